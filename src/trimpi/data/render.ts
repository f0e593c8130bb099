// Rendering scenes for training and evaluation: the engine's SceneRenderer (src/kernels/render.ts)
// applied to CLEVR-like scenes, giving GPU image tensors for the ViT (the renderer fills the buffer of
// a tensor made here) and/or RGB images for PNGs, with the scene graphs kept alongside.
import { SceneRenderer } from '../../kernels/render.js';
import type { Device } from '../../gpu/device.js';
import { init } from '../../gpu/device.js';
import { check } from '../../gpu/errors.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Policy } from './clevr_policy.js';
import type { RgbImage } from './png.js';
import { rng } from './rng.js';
import { Scene, SceneGraph, cropScene, sceneGraph, toRenderScene } from './scene.js';

/** Options of renderScenes: the device, what to return, shadows and 4x MSAA (both default on), batch size. */
export interface RenderOptions {
  device?: Device;
  /** Return an f32 [N, 3, H, W] tensor in [0, 1] on the device (default true). */
  tensor?: boolean;
  /** Return RGB images (for PNGs; default false). */
  images?: boolean;
  shadows?: boolean;
  msaa?: boolean;
  /** Scenes per submission (default 64). */
  batch?: number;
}

/** The result of renderScenes, in scene order: the image tensor and/or RGB images, and the scene graphs. */
export interface RenderedScenes {
  /** f32 [N, 3, H, W], values in [0, 1]; the caller disposes it. */
  tensor?: Tensor;
  images?: RgbImage[];
  graphs: SceneGraph[];
}

const renderers = new Map<string, SceneRenderer>();

function rendererFor(dev: Device, w: number, h: number, o: RenderOptions): SceneRenderer {
  const key = `${w}x${h}|${o.shadows ?? true}|${o.msaa ?? true}|${o.batch ?? 64}`;
  let r = renderers.get(key);
  if (!r || r.dev !== dev) {
    r?.destroy();
    r = new SceneRenderer(dev, { width: w, height: h, shadows: o.shadows, msaa: o.msaa, batch: o.batch });
    renderers.set(key, r);
  }
  return r;
}

/** Renders scenes (all of one size), many per GPU submission. */
export async function renderScenes(scenes: readonly Scene[], opts: RenderOptions = {}): Promise<RenderedScenes> {
  check(scenes.length > 0, 'renderScenes', () => 'no scenes given');
  const { width, height } = scenes[0];
  check(scenes.every((s) => s.width === width && s.height === height), 'renderScenes', () => `all scenes must have one size (the first is ${width}x${height})`);
  const dev = opts.device ?? (await init());
  const r = rendererFor(dev, width, height, opts);
  const tensor = (opts.tensor ?? true) ? Tensor.empty([scenes.length, 3, height, width], 'f32', dev) : null;
  let res: { pixels?: Uint8Array[] };
  try {
    res = await r.render(scenes.map(toRenderScene), { out: tensor?.buffer, pixels: opts.images ?? false });
  } catch (e) {
    tensor?.dispose();
    throw e;
  }
  const out: RenderedScenes = { graphs: scenes.map(sceneGraph) };
  if (tensor) out.tensor = tensor;
  if (res.pixels) out.images = res.pixels.map((rgb) => ({ width, height, rgb }));
  return out;
}

/** The crop scenes of a -M policy, in the order of its `<image>` places (as the export renders them). */
export function policyCropScenes(p: Policy, seed: number, size = 64): Scene[] {
  return p.crops.map((c) => cropScene(rng(seed, 'crop', p.name, c.node), c.object, size, size));
}

/** Frees the cached renderers (their GPU textures and buffers). */
export function releaseRenderers(): void {
  for (const r of renderers.values()) r.destroy();
  renderers.clear();
}
