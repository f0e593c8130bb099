// Launcher for render.wgsl: a WebGPU render pipeline that rasterizes many small 3-D scenes (unit
// meshes for cube, sphere, cylinder and a ground plane; one camera and key light per scene) in one
// command submission per batch, then reads the images back once per batch as RGB bytes and/or turns
// them, on the GPU, into f32 [N, 3, H, W] values in [0, 1] in a storage buffer the caller provides
// (src/trimpi/data/render.ts wraps it in a tensor).
import { mat4 } from 'gl-matrix';
import type { Device } from '../gpu/device.js';
import { TrimpiError, check } from '../gpu/errors.js';
import { Params, bindingDecls, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

export type MeshKind = 'cube' | 'sphere' | 'cylinder';
type AnyMesh = MeshKind | 'plane';

export type Vec3 = readonly [number, number, number];

export interface RenderCamera {
  eye: Vec3;
  target: Vec3;
  /** Vertical field of view in degrees. */
  fovY: number;
}

export interface RenderObject {
  mesh: MeshKind;
  /** Column-major 4x4 model matrix (translation, rotation, uniform scale) of the unit mesh. */
  model: ArrayLike<number>;
  /** Albedo in linear RGB, each in [0, 1]. */
  color: Vec3;
  metal: boolean;
  /** Bounding sphere (world space) used for the ground shadow. */
  bound: { center: Vec3; radius: number };
}

export interface RenderScene {
  camera: RenderCamera;
  /** Direction towards the key light (need not be normalized). */
  lightDir: Vec3;
  objects: readonly RenderObject[];
  /** Ground albedo, linear RGB (default a light gray). */
  groundColor?: Vec3;
}

export interface RendererOptions {
  width?: number;
  height?: number;
  /** Soft shadows of the objects on the ground (default true). */
  shadows?: boolean;
  /** 4x multisampling (default true). */
  msaa?: boolean;
  /** Scenes per command submission and readback (default 64, at most 256 texture layers). */
  batch?: number;
}

export interface RenderRequest {
  /**
   * A storage buffer to fill with f32 [N, 3, H, W], values in [0, 1], from byte 0 (at least
   * N * 3 * H * W * 4 bytes; on the renderer's device). The caller owns it.
   */
  out?: GPUBuffer;
  /** Read the images back as RGB bytes (default true when `out` is not given). */
  pixels?: boolean;
}

export interface RenderResult {
  /** One H*W*3 RGB byte array per scene, rows top to bottom (only if requested). */
  pixels?: Uint8Array[];
}

export const MAX_SHADOW_CASTERS = 10;
const NEAR = 0.1;
const FAR = 100;
const SCENE_BLOCK = 256; // bytes per scene uniform block (multiple of minUniformBufferOffsetAlignment)
const INSTANCE_FLOATS = 20; // model (16) + albedo/material (4)
const VERTEX_FLOATS = 6; // position + normal

// ---- meshes ---------------------------------------------------------------------------------------

export interface Mesh {
  /** Interleaved position (3) + normal (3). */
  vertices: Float32Array;
  indices: Uint32Array;
}

function cubeMesh(): Mesh {
  const v: number[] = [];
  const idx: number[] = [];
  // per face: normal axis, sign; four corners with flat normals
  const faces: [number, number][] = [[0, 1], [0, -1], [1, 1], [1, -1], [2, 1], [2, -1]];
  for (const [axis, s] of faces) {
    const u = (axis + 1) % 3;
    const w = (axis + 2) % 3;
    const base = v.length / VERTEX_FLOATS;
    const corners = [[-1, -1], [1, -1], [1, 1], [-1, 1]];
    for (const [a, b] of corners) {
      const p = [0, 0, 0];
      const n = [0, 0, 0];
      p[axis] = s;
      p[u] = a;
      p[w] = b;
      n[axis] = s;
      v.push(...p, ...n);
    }
    // counter-clockwise seen from outside (culling is off, so winding only matters for clarity)
    if (s > 0) idx.push(base, base + 1, base + 2, base, base + 2, base + 3);
    else idx.push(base, base + 2, base + 1, base, base + 3, base + 2);
  }
  return { vertices: new Float32Array(v), indices: new Uint32Array(idx) };
}

function sphereMesh(slices = 24, stacks = 16): Mesh {
  const v: number[] = [];
  const idx: number[] = [];
  for (let i = 0; i <= stacks; i++) {
    const phi = (Math.PI * i) / stacks;
    for (let j = 0; j <= slices; j++) {
      const th = (2 * Math.PI * j) / slices;
      const x = Math.sin(phi) * Math.cos(th);
      const y = Math.cos(phi);
      const z = Math.sin(phi) * Math.sin(th);
      v.push(x, y, z, x, y, z);
    }
  }
  for (let i = 0; i < stacks; i++) {
    for (let j = 0; j < slices; j++) {
      const a = i * (slices + 1) + j;
      const b = a + slices + 1;
      idx.push(a, b, a + 1, a + 1, b, b + 1);
    }
  }
  return { vertices: new Float32Array(v), indices: new Uint32Array(idx) };
}

function cylinderMesh(segments = 32): Mesh {
  const v: number[] = [];
  const idx: number[] = [];
  // side: smooth normals
  for (let j = 0; j <= segments; j++) {
    const th = (2 * Math.PI * j) / segments;
    const x = Math.cos(th);
    const z = Math.sin(th);
    v.push(x, -1, z, x, 0, z, x, 1, z, x, 0, z);
  }
  for (let j = 0; j < segments; j++) {
    const a = 2 * j;
    idx.push(a, a + 1, a + 2, a + 2, a + 1, a + 3);
  }
  // caps: flat normals, a centre vertex and a ring each
  for (const y of [1, -1]) {
    const centre = v.length / VERTEX_FLOATS;
    v.push(0, y, 0, 0, y, 0);
    for (let j = 0; j <= segments; j++) {
      const th = (2 * Math.PI * j) / segments;
      v.push(Math.cos(th), y, Math.sin(th), 0, y, 0);
    }
    for (let j = 0; j < segments; j++) idx.push(centre, centre + 1 + j, centre + 2 + j);
  }
  return { vertices: new Float32Array(v), indices: new Uint32Array(idx) };
}

function planeMesh(half = 60): Mesh {
  const v = [-half, 0, -half, 0, 1, 0, half, 0, -half, 0, 1, 0, half, 0, half, 0, 1, 0, -half, 0, half, 0, 1, 0];
  return { vertices: new Float32Array(v), indices: new Uint32Array([0, 2, 1, 0, 3, 2]) };
}

const meshCache = new Map<AnyMesh, Mesh>();
function buildMesh(kind: AnyMesh): Mesh {
  let m = meshCache.get(kind);
  if (!m) {
    m = kind === 'cube' ? cubeMesh() : kind === 'sphere' ? sphereMesh() : kind === 'cylinder' ? cylinderMesh() : planeMesh();
    meshCache.set(kind, m);
  }
  return m;
}

/** The unit mesh of a shape (interleaved position + normal), e.g. to project it for pixel boxes. */
export function unitMesh(kind: MeshKind): Mesh {
  return buildMesh(kind);
}

// ---- camera -----------------------------------------------------------------------------------------

/** World -> clip matrix (column-major, depth in [0, 1]) for a camera and an image aspect (w / h). */
export function viewProjection(camera: RenderCamera, aspect: number): mat4 {
  const view = mat4.lookAt(mat4.create(), camera.eye as unknown as Float32Array, camera.target as unknown as Float32Array, [0, 1, 0]);
  const proj = mat4.perspectiveZO(mat4.create(), (camera.fovY * Math.PI) / 180, aspect, NEAR, FAR);
  return mat4.multiply(mat4.create(), proj, view);
}

/** Projects a world point to pixel coordinates (x right, y down, (0, 0) the top-left corner) and depth. */
export function projectPoint(viewProj: ArrayLike<number>, p: Vec3, width: number, height: number): { x: number; y: number; depth: number } {
  const m = viewProj;
  const cx = m[0] * p[0] + m[4] * p[1] + m[8] * p[2] + m[12];
  const cy = m[1] * p[0] + m[5] * p[1] + m[9] * p[2] + m[13];
  const cz = m[2] * p[0] + m[6] * p[1] + m[10] * p[2] + m[14];
  const cw = m[3] * p[0] + m[7] * p[1] + m[11] * p[2] + m[15];
  return { x: ((cx / cw + 1) / 2) * width, y: ((1 - cy / cw) / 2) * height, depth: cz / cw };
}

// ---- the renderer -------------------------------------------------------------------------------------

const MESHES: AnyMesh[] = ['cube', 'sphere', 'cylinder', 'plane'];
const TEXTURE_USAGE = 0x10 /* RENDER_ATTACHMENT */ | 0x01 /* COPY_SRC */;
const DEFAULT_GROUND: Vec3 = [0.42, 0.42, 0.42];

/**
 * Renders scenes with a WebGPU render pipeline. Holds its GPU resources (pipelines, meshes, a texture
 * array of `batch` layers, staging buffers) until destroy(). Deterministic on a given device.
 */
export class SceneRenderer {
  readonly width: number;
  readonly height: number;
  readonly shadows: boolean;
  readonly msaa: boolean;
  readonly batch: number;
  private readonly gpu: GPUDevice;
  private readonly pipeline: GPURenderPipeline;
  private readonly sceneLayout: GPUBindGroupLayout;
  private readonly sceneBuffer: GPUBuffer;
  private readonly sceneBindGroup: GPUBindGroup;
  private readonly instanceBuffer: GPUBuffer;
  private readonly vertexBuffer: GPUBuffer;
  private readonly indexBuffer: GPUBuffer;
  private readonly ranges = new Map<AnyMesh, { firstIndex: number; count: number; baseVertex: number }>();
  private readonly layers: GPUTexture;
  private readonly msaaTarget: GPUTexture | null;
  private readonly depth: GPUTexture;
  /** Two staging buffers: the CPU reads one batch while the GPU renders the next. */
  private readonly readBuffers: [GPUBuffer, GPUBuffer];
  private readonly rowBytes: number;
  private readonly maxInstances: number;
  private readonly source: string;
  private readonly emptyGroup: GPUBindGroup;
  private setupError: TrimpiError | null = null;
  private destroyed = false;

  constructor(readonly dev: Device, opts: RendererOptions = {}) {
    const op = 'SceneRenderer';
    this.width = opts.width ?? 64;
    this.height = opts.height ?? 64;
    this.shadows = opts.shadows ?? true;
    this.msaa = opts.msaa ?? true;
    this.batch = opts.batch ?? 64;
    const maxDim = (dev.gpu.limits as unknown as Record<string, number>).maxTextureDimension2D ?? 8192;
    check(Number.isInteger(this.width) && Number.isInteger(this.height) && this.width >= 8 && this.height >= 8 && this.width <= maxDim && this.height <= maxDim,
      op, () => `width and height must be integers in [8, ${maxDim}], got ${this.width}x${this.height}`);
    check(Number.isInteger(this.batch) && this.batch >= 1 && this.batch <= 256, op, () => `batch must be an integer in [1, 256], got ${this.batch}`);
    const gpu = (this.gpu = dev.gpu);

    // template filled once: the compute entry point needs its params/bindings to compile the module
    const prm = new Params().u(0, 0, 0, 0, 0);
    this.source = fill(wgslSource('render'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: 'f32', write: true }, { name: 'packed', type: 'u32' }]),
    });

    // one vertex/index buffer for all meshes
    let nv = 0;
    let ni = 0;
    for (const k of MESHES) {
      const m = buildMesh(k);
      this.ranges.set(k, { firstIndex: ni, count: m.indices.length, baseVertex: nv });
      nv += m.vertices.length / VERTEX_FLOATS;
      ni += m.indices.length;
    }
    const verts = new Float32Array(nv * VERTEX_FLOATS);
    const inds = new Uint32Array(ni);
    for (const k of MESHES) {
      const m = buildMesh(k);
      const r = this.ranges.get(k)!;
      verts.set(m.vertices, r.baseVertex * VERTEX_FLOATS);
      inds.set(m.indices, r.firstIndex);
    }
    this.vertexBuffer = gpu.createBuffer({ size: verts.byteLength, usage: 0x20 /* VERTEX */ | 0x08, label: 'render-vertices' });
    gpu.queue.writeBuffer(this.vertexBuffer, 0, verts);
    this.indexBuffer = gpu.createBuffer({ size: inds.byteLength, usage: 0x10 /* INDEX */ | 0x08, label: 'render-indices' });
    gpu.queue.writeBuffer(this.indexBuffer, 0, inds);

    this.maxInstances = this.batch * (MAX_SHADOW_CASTERS + 1);
    this.instanceBuffer = gpu.createBuffer({ size: this.maxInstances * INSTANCE_FLOATS * 4, usage: 0x20 | 0x08, label: 'render-instances' });
    this.sceneBuffer = gpu.createBuffer({ size: this.batch * SCENE_BLOCK, usage: 0x40 /* UNIFORM */ | 0x08, label: 'render-scenes' });

    gpu.pushErrorScope('validation');
    const module = gpu.createShaderModule({ code: this.source, label: 'render' });
    this.sceneLayout = gpu.createBindGroupLayout({
      label: 'render-scene',
      entries: [{ binding: 0, visibility: 0x1 /* VERTEX */ | 0x2 /* FRAGMENT */, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: SCENE_BLOCK } }],
    });
    const empty = gpu.createBindGroupLayout({ entries: [], label: 'render-empty' });
    this.pipeline = gpu.createRenderPipeline({
      label: 'render',
      layout: gpu.createPipelineLayout({ bindGroupLayouts: [empty, this.sceneLayout] }),
      vertex: {
        module,
        entryPoint: 'vs',
        buffers: [
          {
            arrayStride: VERTEX_FLOATS * 4,
            stepMode: 'vertex',
            attributes: [
              { shaderLocation: 0, offset: 0, format: 'float32x3' },
              { shaderLocation: 1, offset: 12, format: 'float32x3' },
            ],
          },
          {
            arrayStride: INSTANCE_FLOATS * 4,
            stepMode: 'instance',
            attributes: [0, 1, 2, 3, 4].map((k) => ({ shaderLocation: 2 + k, offset: 16 * k, format: 'float32x4' as GPUVertexFormat })),
          },
        ],
      },
      fragment: { module, entryPoint: 'fs', targets: [{ format: 'rgba8unorm' }] },
      primitive: { topology: 'triangle-list', cullMode: 'none' },
      depthStencil: { format: 'depth24plus', depthWriteEnabled: true, depthCompare: 'less' },
      multisample: { count: this.msaa ? 4 : 1 },
    });
    this.sceneBindGroup = gpu.createBindGroup({
      layout: this.sceneLayout,
      entries: [{ binding: 0, resource: { buffer: this.sceneBuffer, offset: 0, size: SCENE_BLOCK } }],
    });
    this.emptyGroup = gpu.createBindGroup({ layout: empty, entries: [] });

    const size = { width: this.width, height: this.height };
    this.layers = gpu.createTexture({ size: { ...size, depthOrArrayLayers: this.batch }, format: 'rgba8unorm', usage: TEXTURE_USAGE, label: 'render-layers' });
    this.msaaTarget = this.msaa
      ? gpu.createTexture({ size, format: 'rgba8unorm', usage: 0x10, sampleCount: 4, label: 'render-msaa' })
      : null;
    this.depth = gpu.createTexture({ size, format: 'depth24plus', usage: 0x10, sampleCount: this.msaa ? 4 : 1, label: 'render-depth' });
    this.rowBytes = Math.ceil((this.width * 4) / 256) * 256;
    const staging = (): GPUBuffer => gpu.createBuffer({ size: this.rowBytes * this.height * this.batch, usage: 0x01 /* MAP_READ */ | 0x08, label: 'render-readback' });
    this.readBuffers = [staging(), staging()];
    void gpu.popErrorScope().then((err) => {
      if (err) this.setupError = new TrimpiError(op, `render pipeline setup failed: ${err.message}`);
    });
  }

  /** The compute pipeline that converts rgba8 rows to f32 [N, 3, H, W]. */
  private unpackPipeline(): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
    return this.dev.pipeline('render-unpack', 'render-unpack', () => this.source);
  }

  /**
   * Renders `scenes` (many per submission). `want.out`: a buffer to fill with f32 [N, 3, H, W]
   * (see RenderRequest); `want.pixels`: RGB bytes per scene, read back (the default without `out`).
   */
  async render(scenes: readonly RenderScene[], want: RenderRequest = {}): Promise<RenderResult> {
    const op = 'SceneRenderer.render';
    check(!this.destroyed, op, () => 'the renderer was destroyed');
    this.dev.throwIfError(op);
    if (this.setupError) throw this.setupError;
    for (const [i, s] of scenes.entries()) {
      check(s.objects.length <= MAX_SHADOW_CASTERS, op, () => `scene ${i} has ${s.objects.length} objects; at most ${MAX_SHADOW_CASTERS} are supported`);
    }
    const n = scenes.length;
    const { width: w, height: h } = this;
    const out = want.out ?? null;
    const wantPixels = want.pixels ?? !out;
    if (out) {
      check(out.size >= n * 3 * h * w * 4, op, () => `the output buffer holds ${out.size} bytes; ${n} scenes of 3x${h}x${w} f32 need ${n * 3 * h * w * 4}`);
    }
    const result: RenderResult = {};
    const pixels: Uint8Array[] = [];
    // reads batch `b` back: called after batch b + 1 was submitted, so the GPU keeps working meanwhile
    const readBack = async (buffer: GPUBuffer, count: number): Promise<void> => {
      const bytes = this.rowBytes * h * count;
      await buffer.mapAsync(0x0001 /* READ */, 0, bytes);
      const data = new Uint8Array(buffer.getMappedRange(0, bytes));
      for (let k = 0; k < count; k++) {
        const rgb = new Uint8Array(w * h * 3);
        for (let y = 0; y < h; y++) {
          const row = (k * h + y) * this.rowBytes;
          for (let x = 0; x < w; x++) {
            const s = row + 4 * x;
            const d = 3 * (y * w + x);
            rgb[d] = data[s];
            rgb[d + 1] = data[s + 1];
            rgb[d + 2] = data[s + 2];
          }
        }
        pixels.push(rgb);
      }
      buffer.unmap();
    };
    let previous: { buffer: GPUBuffer; count: number } | null = null;
    for (let start = 0, b = 0; start < n; start += this.batch, b++) {
      const chunk = scenes.slice(start, start + this.batch);
      const target = wantPixels ? this.readBuffers[b % 2] : null;
      const packed = this.encodeBatch(chunk, target, out ? start * 3 * w * h : -1, out);
      if (packed) this.dev.pool.release(packed);
      if (previous) await readBack(previous.buffer, previous.count);
      previous = target ? { buffer: target, count: chunk.length } : null;
    }
    if (previous) await readBack(previous.buffer, previous.count);
    this.dev.throwIfError(op);
    if (this.setupError) throw this.setupError;
    if (wantPixels) result.pixels = pixels;
    return result;
  }

  /** Records and submits one batch: a render pass per scene, then the copies out of the layers. */
  private encodeBatch(scenes: readonly RenderScene[], readBuffer: GPUBuffer | null, outOffset: number, out: GPUBuffer | null): GPUBuffer | null {
    const { gpu, width: w, height: h } = this;
    const aspect = w / h;
    // per-scene uniforms and per-object instances
    const sceneData = new Float32Array((scenes.length * SCENE_BLOCK) / 4);
    const inst = new Float32Array(this.maxInstances * INSTANCE_FLOATS);
    const draws: { mesh: AnyMesh; instance: number }[][] = [];
    let ni = 0;
    const pushInstance = (model: ArrayLike<number>, color: Vec3, kind: number): number => {
      const o = ni * INSTANCE_FLOATS;
      for (let k = 0; k < 16; k++) inst[o + k] = model[k];
      inst[o + 16] = color[0];
      inst[o + 17] = color[1];
      inst[o + 18] = color[2];
      inst[o + 19] = kind;
      return ni++;
    };
    const identity = mat4.create();
    scenes.forEach((s, i) => {
      const base = (i * SCENE_BLOCK) / 4;
      sceneData.set(viewProjection(s.camera, aspect), base);
      sceneData.set([...s.camera.eye, 1], base + 16);
      sceneData.set([...s.lightDir, this.shadows ? s.objects.length : 0], base + 20);
      s.objects.forEach((o, k) => sceneData.set([...o.bound.center, o.bound.radius], base + 24 + 4 * k));
      const list: { mesh: AnyMesh; instance: number }[] = [{ mesh: 'plane', instance: pushInstance(identity, s.groundColor ?? DEFAULT_GROUND, 2) }];
      for (const o of s.objects) list.push({ mesh: o.mesh, instance: pushInstance(o.model, o.color, o.metal ? 1 : 0) });
      draws.push(list);
    });
    gpu.queue.writeBuffer(this.sceneBuffer, 0, sceneData);
    gpu.queue.writeBuffer(this.instanceBuffer, 0, inst, 0, ni * INSTANCE_FLOATS);

    // earlier compute work first (queue order), then this batch in one submission
    this.dev.flush();
    const enc = gpu.createCommandEncoder({ label: 'render-batch' });
    const depthView = this.depth.createView();
    const msaaView = this.msaaTarget?.createView();
    scenes.forEach((_, i) => {
      const layer = this.layers.createView({ dimension: '2d', baseArrayLayer: i, arrayLayerCount: 1 });
      const pass = enc.beginRenderPass({
        colorAttachments: [{
          view: msaaView ?? layer,
          resolveTarget: msaaView ? layer : undefined,
          clearValue: { r: 0.5, g: 0.5, b: 0.5, a: 1 },
          loadOp: 'clear',
          storeOp: msaaView ? 'discard' : 'store',
        }],
        depthStencilAttachment: { view: depthView, depthClearValue: 1, depthLoadOp: 'clear', depthStoreOp: 'discard' },
      });
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, this.emptyGroup);
      pass.setBindGroup(1, this.sceneBindGroup, [i * SCENE_BLOCK]);
      pass.setVertexBuffer(0, this.vertexBuffer);
      pass.setVertexBuffer(1, this.instanceBuffer);
      pass.setIndexBuffer(this.indexBuffer, 'uint32');
      for (const d of draws[i]) {
        const r = this.ranges.get(d.mesh)!;
        pass.drawIndexed(r.count, 1, r.firstIndex, r.baseVertex, d.instance);
      }
      pass.end();
    });
    const copySize = { width: w, height: h, depthOrArrayLayers: scenes.length };
    if (readBuffer) {
      enc.copyTextureToBuffer({ texture: this.layers }, { buffer: readBuffer, bytesPerRow: this.rowBytes, rowsPerImage: h }, copySize);
    }
    let packed: GPUBuffer | null = null;
    if (out) {
      packed = this.dev.alloc(this.rowBytes * h * scenes.length, 'render-packed');
      enc.copyTextureToBuffer({ texture: this.layers }, { buffer: packed, bytesPerRow: this.rowBytes, rowsPerImage: h }, copySize);
    }
    gpu.queue.submit([enc.finish()]);
    if (out && packed) {
      const count = scenes.length * w * h;
      const prm = new Params().u(count, w, h, this.rowBytes / 4, outOffset);
      this.dev.dispatch('render-unpack', this.unpackPipeline(), prm.u32s, [out, packed], grid1d(count, 256, this.dev.limits.maxComputeWorkgroupsPerDimension));
    }
    return packed;
  }

  /** Frees the GPU resources. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of [this.vertexBuffer, this.indexBuffer, this.instanceBuffer, this.sceneBuffer, ...this.readBuffers]) b.destroy();
    for (const t of [this.layers, this.depth, this.msaaTarget]) t?.destroy();
  }
}
