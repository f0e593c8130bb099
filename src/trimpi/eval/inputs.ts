// Prompts whose images come from two places: the dataset's PNGs (test images, -M policy crops) and
// scenes rendered on the fly (the crops of a policy that is not in the dataset, e.g. an override
// policy); and batched greedy generation over such prompts with the KV cache.
import { generate } from '../../nn/generate.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import { renderScenes } from '../data/render.js';
import type { Scene } from '../data/scene.js';
import { EOS, Tokenizer } from '../data/tokenizer.js';
import { tensor } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { MpiData } from '../stages/mpi_data.js';

/** An image: a file of the dataset (relative path) or a scene to render at the data's image size. */
export type ImageSource = string | Scene;

/** A prompt and its images, one per `<image>` place, in order. */
export interface EvalPrompt {
  prompt: string;
  images: ImageSource[];
}

/** The images of many prompts, in order, as one (N, 3, H, W) tensor in [0, 1] (null when none). */
export async function sourceImages(data: MpiData, sources: readonly ImageSource[]): Promise<Tensor | null> {
  if (sources.length === 0) return null;
  const size = data.spec.imageSize;
  const scenes = sources.filter((s): s is Scene => typeof s !== 'string').map((s) => ({ ...s, width: size, height: size }));
  const rendered = scenes.length ? (await renderScenes(scenes, { tensor: false, images: true })).images! : [];
  const files = data.hostImages(sources.filter((s): s is string => typeof s === 'string'));
  const hw = size * size;
  const out = new Float32Array(sources.length * 3 * hw);
  let file = 0, scene = 0;
  sources.forEach((s, n) => {
    if (typeof s === 'string') out.set(files!.data.subarray(file * 3 * hw, ++file * 3 * hw), n * 3 * hw);
    else {
      const rgb = rendered[scene++].rgb;
      for (let i = 0; i < hw; i++) for (let c = 0; c < 3; c++) out[n * 3 * hw + c * hw + i] = rgb[3 * i + c] / 255;
    }
  });
  return tensor(out, { shape: [sources.length, 3, size, size] });
}

/** Greedy outputs for prompts, batched (KV cache), in order. */
export async function generateOutputs(model: VisionLanguageModel, tok: Tokenizer, data: MpiData, prompts: readonly EvalPrompt[], o: { maxNewTokens: number; batchSize?: number }): Promise<string[]> {
  const bs = o.batchSize ?? 32;
  const outputs: string[] = [];
  for (let i = 0; i < prompts.length; i += bs) {
    const chunk = prompts.slice(i, i + bs);
    const images = await sourceImages(data, chunk.flatMap((p) => p.images));
    try {
      const res = await generate(model, chunk.map((p) => tok.encode(p.prompt)), images, { maxNewTokens: o.maxNewTokens, temperature: 0, eosId: EOS });
      for (const t of res.tokens) outputs.push(tok.decode(t));
    } finally {
      images?.dispose();
    }
  }
  return outputs;
}
