// The GPU device and the execution engine: adapter/device acquisition with the adapter's maxima,
// one command encoder batching many dispatches (submitted in chunks and at readback), pipelines
// cached by a structural key, per-dispatch uniforms packed into pooled uniform buffers and read at
// a dynamic offset (so a bind group is made once per set of buffers, not per dispatch), and errors
// surfaced as TrimpiError naming the op.
import { BufferPool } from './memory.js';
import { TrimpiError } from './errors.js';

/** What the WebGPU adapter reports about itself (`trimpi doctor` prints it). */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isFallbackAdapter: boolean;
  /** Subgroup sizes the adapter may use (0 when unknown). */
  subgroupMinSize: number;
  subgroupMaxSize: number;
}

/** Options of createDevice() / init(). */
export interface DeviceOptions {
  /** Dawn toggles/options passed to webgpu's create(), e.g. ['backend=vulkan']. */
  dawnOptions?: string[];
  powerPreference?: GPUPowerPreference;
  /** Dispatches recorded before the batch is submitted even without a readback (default 256). */
  maxDispatchesPerSubmit?: number;
  /** Wrap every dispatch in a validation error scope (slower, exact op attribution). Env TRIMPI_DEBUG=1. */
  debug?: boolean;
  /**
   * Most GPU buffers the pool keeps alive at once (default 60,000; env TRIMPI_MAX_BUFFERS). Drivers
   * have a hard limit (lavapipe maps each buffer: Linux allows ~65,530 mappings, then the process
   * dies with SIGSEGV); past this one, allocating throws a TrimpiError saying how many are alive.
   */
  maxLiveBuffers?: number;
}

const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize', 'maxBindGroups',
] as const;

type Limits = Record<(typeof WANTED_LIMITS)[number], number>;

const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08 /* COPY_DST */;
const UNIFORM_USAGE = 0x40 /* UNIFORM */ | 0x08 /* COPY_DST */;
const MAP_READ_USAGE = 0x01 /* MAP_READ */ | 0x08 /* COPY_DST */;
const UNIFORM_CHUNK = 64 * 1024;

/** Words (u32 flags) in the device-side assertion arena: checked calls between two readbacks, at most. */
const ASSERT_WORDS = 4096;

/** One armed device-side check: the call that a set flag word blames. */
interface AssertRecord {
  word: number;
  op: string;
  describe: () => string;
}

/** Where a kernel reports a failed device-side check: atomicStore(&flags[word], 1u). */
export interface AssertSlot {
  /** The arena buffer (atomic<u32> words), bound read_write. */
  buffer: GPUBuffer;
  /** This call's word in it (a kernel parameter). */
  word: number;
}

/** Counters for the execution engine (how well batching and caching work). */
export interface ExecStats {
  dispatches: number;
  submits: number;
  pipelinesCompiled: number;
  pipelineCacheHits: number;
  readbacks: number;
  uniformBytes: number;
}

class UniformArena {
  private chunks: { buffer: GPUBuffer; mirror: Uint8Array; mirror32: Uint32Array; used: number }[] = [];
  private spare: GPUBuffer[] = [];
  private active = 0;
  constructor(private readonly device: GPUDevice, private readonly align: number) {}

  /**
   * Copies `data` (bytes, or u32 words: no typed array built per dispatch) into the current chunk;
   * returns where it lives for the bind group.
   */
  push(data: Uint8Array | readonly number[]): { buffer: GPUBuffer; offset: number; size: number } {
    const bytes = data instanceof Uint8Array ? data.byteLength : data.length * 4;
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    let c = this.chunks[this.active];
    if (!c || c.used + size > UNIFORM_CHUNK) {
      if (c) this.active++;
      c = this.chunks[this.active];
      if (!c) {
        const buffer = this.spare.pop() ?? this.device.createBuffer({ size: UNIFORM_CHUNK, usage: UNIFORM_USAGE, label: 'uniforms' });
        const mirror = new Uint8Array(UNIFORM_CHUNK);
        c = { buffer, mirror, mirror32: new Uint32Array(mirror.buffer), used: 0 };
        this.chunks.push(c);
      }
    }
    const offset = c.used;
    if (data instanceof Uint8Array) c.mirror.set(data, offset);
    else {
      c.mirror32.set(data, offset / 4);
      c.mirror32.fill(0, offset / 4 + data.length, (offset + size) / 4); // the vec4 padding
    }
    c.used = Math.ceil((offset + size) / this.align) * this.align;
    return { buffer: c.buffer, offset, size };
  }

  /** Uploads what was pushed (before the submit that uses it); chunks are reusable afterwards. */
  upload(queue: GPUQueue): number {
    let bytes = 0;
    for (const c of this.chunks) {
      if (c.used > 0) queue.writeBuffer(c.buffer, 0, c.mirror, 0, c.used);
      bytes += c.used;
      c.used = 0;
    }
    this.active = 0;
    return bytes;
  }
}

/** A compiled pipeline; `key` is its structural cache key (the profiler's kernel name). */
export interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  key?: string;
  /**
   * Its bind groups by the buffers they bind, when the layout reads the uniform block (binding 0)
   * at a dynamic offset: a dispatch whose buffers were bound before reuses that bind group and only
   * passes its uniforms' offset. Absent for 'auto' layouts (a new bind group per dispatch).
   */
  bindGroups?: Map<string, GPUBindGroup>;
}

/** Cached bind groups across all pipelines at most; past it every cache is cleared (they rebuild on use). */
const MAX_CACHED_BIND_GROUPS = 16384;

/**
 * The explicit bind-group layout of a kernel whose bindings are all in group 0 with the uniform block
 * at binding 0 (what paramsDecl/bindingDecls emit): the uniform read at a dynamic offset, the others
 * storage buffers as declared. null for anything else (the pipeline then uses layout 'auto').
 */
function dynamicUniformLayout(gpu: GPUDevice, source: string): GPUBindGroupLayout | null {
  const decls = [...source.matchAll(/@group\((\d+)\)\s*@binding\((\d+)\)\s*var<\s*(uniform|storage\s*,\s*(read_write|read))\s*>/g)];
  if (!decls.length || decls.some((d) => d[1] !== '0')) return null;
  const bindings = decls.map((d) => Number(d[2]));
  if (new Set(bindings).size !== bindings.length) return null;
  const uniforms = decls.filter((d) => d[3] === 'uniform').map((d) => Number(d[2]));
  if (uniforms.length !== 1 || uniforms[0] !== 0) return null;
  return gpu.createBindGroupLayout({
    entries: decls.map((d) => ({
      binding: Number(d[2]),
      visibility: 4, // COMPUTE
      buffer: d[3] === 'uniform' ? { type: 'uniform' as const, hasDynamicOffset: true } : { type: d[4] === 'read' ? 'read-only-storage' as const : 'storage' as const },
    })),
  });
}

/** One dispatch's GPU time (timestamps around its own compute pass). */
export interface DispatchTiming {
  /** the op that launched it */
  op: string;
  /** the kernel: its pipeline cache key */
  kernel: string;
  ms: number;
}

interface Profiler {
  querySet: GPUQuerySet;
  capacity: number;
  used: number;
  labels: { op: string; kernel: string }[];
  segments: Promise<DispatchTiming[]>[];
}

/**
 * A Dawn WebGPU device with the engine's execution state: the command encoder that batches
 * dispatches, the pipeline cache, the buffer pool, uniforms and stats. Created by init() /
 * createDevice(); tensors remember the device they live on.
 */
export class Device {
  readonly pool: BufferPool;
  readonly limits: Limits;
  readonly features: ReadonlySet<string>;
  readonly stats: ExecStats = { dispatches: 0, submits: 0, pipelinesCompiled: 0, pipelineCacheHits: 0, readbacks: 0, uniformBytes: 0 };
  private readonly pipelines = new Map<string, Pipeline>();
  private profiler: Profiler | null = null;
  private readonly uniforms: UniformArena;
  private readonly staging = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline last set on `pass` (a run of dispatches of one kernel sets it once: ~5 us each on Dawn's node binding). */
  private passPipeline: GPUComputePipeline | null = null;
  private inBatch = 0;
  private readonly maxDispatchesPerSubmit: number;
  private readonly debug: boolean;
  private error: TrimpiError | null = null;
  private lostReason: string | null = null;
  private destroyed = false;
  /** Device-side assertions: one u32 word per checked call in `assertArena`, see assertFlag(). */
  private assertArena: GPUBuffer | null = null;
  private assertNext = 0;
  private assertWindow: AssertRecord[] = [];
  private readonly assertWordOfOp = new Map<string, number>();
  /** The one dynamic offset of a dispatch (a typed array: no array built per call). */
  private readonly dynamicOffset = new Uint32Array(1);
  /** Bind groups held by the pipelines' caches (see Pipeline.bindGroups). */
  private cachedBindGroups = 0;
  /** A number per GPU buffer, for bind-group cache keys. */
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;
  /** Pipeline compile checks still in flight; readbacks await them so a compile error is reported as such. */
  private readonly pendingChecks = new Set<Promise<void>>();

  /**
   * The GPU instance and adapter the device came from. Held on purpose: in dawn.node, collecting the
   * instance while its device lives tears Dawn down under it (an abort at the next GC).
   */
  readonly owners: readonly unknown[];

  constructor(
    readonly gpu: GPUDevice,
    readonly adapter: AdapterDescription,
    opts: DeviceOptions = {},
    owners: readonly unknown[] = [],
  ) {
    this.owners = owners;
    const lim = gpu.limits as unknown as Record<string, number>;
    this.limits = Object.fromEntries(WANTED_LIMITS.map((k) => [k, lim[k]])) as Limits;
    this.features = new Set([...gpu.features]);
    this.pool = new BufferPool(gpu, STORAGE_USAGE);
    const envMax = process.env.TRIMPI_MAX_BUFFERS ? Number(process.env.TRIMPI_MAX_BUFFERS) : undefined;
    this.pool.maxLiveBuffers = opts.maxLiveBuffers ?? (envMax !== undefined && envMax > 0 ? envMax : this.pool.maxLiveBuffers);
    this.pool.onPressure = () => this.flush();
    this.uniforms = new UniformArena(gpu, lim.minUniformBufferOffsetAlignment ?? 256);
    this.maxDispatchesPerSubmit = opts.maxDispatchesPerSubmit ?? 256;
    this.debug = opts.debug ?? process.env.TRIMPI_DEBUG === '1';
    gpu.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      // a follow-up of a pipeline whose compile check is pending: that check reports the root cause
      if (this.pendingChecks.size && /due to a previous error/.test(ev.error.message)) return;
      this.error ??= new TrimpiError('gpu', `WebGPU error: ${ev.error.message}`);
    };
    void gpu.lost.then((info) => {
      if (!this.destroyed) this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  get isLost(): boolean {
    return this.lostReason !== null || this.destroyed;
  }

  /** Throws the first GPU error recorded since the last check (validation, OOM, device loss). */
  throwIfError(op: string): void {
    if (this.destroyed) throw new TrimpiError(op, 'the device was destroyed');
    if (this.lostReason) throw new TrimpiError(op, `the GPU device was lost (${this.lostReason})`);
    const e = this.error;
    if (e) {
      this.error = null;
      throw new TrimpiError(op, `${e.message} (surfaced at ${op})`);
    }
  }

  /** New storage buffer from the pool; `hostWrite` when its contents will come from write(). */
  alloc(bytes: number, label?: string, hostWrite = false): GPUBuffer {
    const max = this.limits.maxStorageBufferBindingSize;
    if (bytes > max) throw new TrimpiError(label ?? 'alloc', `a tensor of ${bytes} bytes exceeds the device's maxStorageBufferBindingSize (${max})`);
    return this.pool.acquire(bytes, label, hostWrite);
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(b, id);
    }
    return id;
  }

  /** Compute pipeline for `key`, compiling `code()` on first use. */
  pipeline(key: string, label: string, code: () => string): Pipeline {
    const hit = this.pipelines.get(key);
    if (hit) {
      this.stats.pipelineCacheHits++;
      return hit;
    }
    const source = code();
    this.gpu.pushErrorScope('validation');
    const module = this.gpu.createShaderModule({ code: source, label });
    const explicit = dynamicUniformLayout(this.gpu, source);
    const layout = explicit ? this.gpu.createPipelineLayout({ bindGroupLayouts: [explicit] }) : 'auto';
    const pipeline = this.gpu.createComputePipeline({ layout, compute: { module, entryPoint: 'main' }, label });
    const check = this.gpu.popErrorScope().then((err) => {
      // the compile error is the root cause: it replaces Dawn's follow-up "invalid due to a previous error"
      if (err && (!this.error || /due to a previous error/.test(this.error.message))) {
        this.error = new TrimpiError(label, `shader/pipeline error: ${err.message}\n--- WGSL (${key}) ---\n${source}`);
      }
    });
    this.pendingChecks.add(check);
    void check.finally(() => this.pendingChecks.delete(check));
    const entry: Pipeline = explicit ? { pipeline, layout: explicit, key, bindGroups: new Map() } : { pipeline, layout: pipeline.getBindGroupLayout(0), key };
    this.pipelines.set(key, entry);
    this.stats.pipelinesCompiled++;
    return entry;
  }

  /**
   * Records one dispatch. Binding 0 is the uniform block (`params`), bindings 1.. are `buffers`
   * in order. Work is submitted in chunks of maxDispatchesPerSubmit and at every readback.
   */
  dispatch(op: string, p: Pipeline, params: Uint8Array | readonly number[],
    buffers: readonly GPUBuffer[], workgroups: readonly [number, number, number]): void {
    if (this.error || this.lostReason || this.destroyed) this.throwIfError(op);
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups.some((w) => w > maxWg)) {
      throw new TrimpiError(op, `dispatch of ${workgroups.join('x')} workgroups exceeds maxComputeWorkgroupsPerDimension (${maxWg})`);
    }
    if (workgroups[0] * workgroups[1] * workgroups[2] === 0) return;
    const u = this.uniforms.push(params);
    const cache = p.bindGroups;
    let bindGroup: GPUBindGroup | undefined;
    let key = '';
    if (cache) {
      key = `${this.bufferId(u.buffer)}:${u.size}`;
      for (let i = 0; i < buffers.length; i++) key += `,${this.bufferId(buffers[i])}`;
      bindGroup = cache.get(key);
    }
    if (!bindGroup) {
      // with a dynamic offset the uniform binding starts at 0 and each dispatch passes its own offset
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: u.buffer, offset: cache ? 0 : u.offset, size: u.size } }];
      for (let i = 0; i < buffers.length; i++) entries.push({ binding: i + 1, resource: { buffer: buffers[i] } });
      bindGroup = this.gpu.createBindGroup({ layout: p.layout, entries, label: op });
      if (cache) {
        if (++this.cachedBindGroups > MAX_CACHED_BIND_GROUPS) {
          for (const q of this.pipelines.values()) q.bindGroups?.clear();
          this.cachedBindGroups = 1;
        }
        cache.set(key, bindGroup);
      }
    }
    if (this.debug) this.gpu.pushErrorScope('validation');
    const timed = this.profiler ? this.profiledPass(op, p.key ?? op) : null;
    const pass = timed ?? this.computePass();
    if (timed || this.passPipeline !== p.pipeline) pass.setPipeline(p.pipeline);
    if (!timed) this.passPipeline = p.pipeline;
    if (cache) {
      this.dynamicOffset[0] = u.offset;
      pass.setBindGroup(0, bindGroup, this.dynamicOffset, 0, 1);
    }
    else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    timed?.end();
    if (this.debug) {
      void this.gpu.popErrorScope().then((err) => {
        if (err) this.error ??= new TrimpiError(op, err.message);
      });
    }
    this.stats.dispatches++;
    if (++this.inBatch >= this.maxDispatchesPerSubmit) this.flush();
  }

  /**
   * Starts recording the GPU time of every dispatch (timestamp queries; needs the adapter's
   * `timestamp-query` feature). Each dispatch then gets its own compute pass, so profiled runs are a
   * little slower than unprofiled ones. See profile() in stats.ts.
   */
  startProfiling(): void {
    if (!this.features.has('timestamp-query')) throw new TrimpiError('profile', 'the device has no timestamp-query feature');
    if (this.profiler) throw new TrimpiError('profile', 'already profiling');
    this.flush();
    const capacity = 2048;
    this.profiler = { querySet: this.gpu.createQuerySet({ type: 'timestamp', count: capacity, label: 'profile' }), capacity, used: 0, labels: [], segments: [] };
  }

  /** Stops profiling; each dispatch recorded since startProfiling with its GPU time, in order. */
  async stopProfiling(): Promise<DispatchTiming[]> {
    const pr = this.profiler;
    if (!pr) throw new TrimpiError('profile', 'not profiling');
    this.resolveProfile();
    this.profiler = null;
    const segments = await Promise.all(pr.segments);
    pr.querySet.destroy();
    return segments.flat();
  }

  /** A compute pass of its own for one dispatch, with timestamps at its start and end. */
  private profiledPass(op: string, kernel: string): GPUComputePassEncoder {
    const pr = this.profiler!;
    if (pr.used + 2 > pr.capacity) this.resolveProfile();
    const index = pr.used;
    pr.used += 2;
    pr.labels.push({ op, kernel });
    return this.commandEncoder().beginComputePass({ timestampWrites: { querySet: pr.querySet, beginningOfPassWriteIndex: index, endOfPassWriteIndex: index + 1 } });
  }

  /** Resolves the timestamps recorded so far into a readback (submitted now, read when stopped). */
  private resolveProfile(): void {
    const pr = this.profiler!;
    const count = pr.used;
    const labels = pr.labels;
    pr.used = 0;
    pr.labels = [];
    if (count === 0) return;
    const bytes = count * 8;
    const resolved = this.gpu.createBuffer({ size: bytes, usage: 0x0200 /* QUERY_RESOLVE */ | 0x0004 /* COPY_SRC */ });
    const readback = this.gpu.createBuffer({ size: bytes, usage: 0x0001 /* MAP_READ */ | 0x0008 /* COPY_DST */ });
    const enc = this.commandEncoder();
    enc.resolveQuerySet(pr.querySet, 0, count, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, readback, 0, bytes);
    this.flush();
    pr.segments.push(readback.mapAsync(0x0001 /* GPUMapMode.READ */).then(() => {
      const ns = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.destroy();
      resolved.destroy();
      return labels.map((l, i) => ({ ...l, ms: Number(ns[2 * i + 1] - ns[2 * i]) / 1e6 }));
    }));
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      this.pass = this.commandEncoder().beginComputePass();
      this.passPipeline = null;
    }
    return this.pass;
  }

  private commandEncoder(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.gpu.createCommandEncoder();
    return this.encoder;
  }

  /** Records a buffer-to-buffer copy in the current batch. */
  copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Writes host data into a buffer (ordered before the batch being recorded): the buffer must come
   * from alloc(…, hostWrite = true), never one that unsubmitted commands may still use.
   */
  write(buffer: GPUBuffer, data: ArrayBufferView): void {
    this.gpu.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Submits everything recorded so far. Buffers released before this become reusable. */
  flush(): void {
    if (this.destroyed) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.stats.uniformBytes += this.uniforms.upload(this.gpu.queue);
    if (this.encoder) {
      this.gpu.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.stats.submits++;
    }
    this.inBatch = 0;
    this.pool.onSubmit();
  }

  /**
   * A word for one call's device-side check (e.g. an index out of range): the kernel stores 1 into
   * `slot.buffer[slot.word]` when the check fails, and the next readback throws a TrimpiError naming
   * `op` with `describe()` (the call's arguments), so the error blames the call that received the bad
   * input even when its result is never read. Each checked call gets its own word between two
   * readbacks (up to ASSERT_WORDS; past that, calls of one op share a word).
   */
  assertFlag(op: string, describe: () => string): AssertSlot {
    this.assertArena ??= this.gpu.createBuffer({ size: ASSERT_WORDS * 4, usage: STORAGE_USAGE, label: 'asserts' });
    let word: number;
    if (this.assertWindow.length < ASSERT_WORDS) {
      word = this.assertNext;
      this.assertNext = (this.assertNext + 1) % ASSERT_WORDS;
    } else {
      word = this.assertWordOfOp.get(op) ?? this.assertWindow[this.assertWindow.length - 1].word;
    }
    this.assertWordOfOp.set(op, word);
    this.assertWindow.push({ word, op, describe });
    return { buffer: this.assertArena, word };
  }

  /** Reads `bytes` from `src` at `offset` (must be multiples of 4) after all recorded work. */
  async read(op: string, src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    if (this.pendingChecks.size) await Promise.all(this.pendingChecks);
    this.throwIfError(op);
    const armed = this.assertWindow;
    this.assertWindow = [];
    this.assertWordOfOp.clear();
    const dataSize = Math.max(16, Math.ceil(bytes / 16) * 16);
    const size = dataSize + (armed.length ? ASSERT_WORDS * 4 : 0);
    const list = this.staging.get(size);
    const staging = list?.pop() ?? this.gpu.createBuffer({ size, usage: MAP_READ_USAGE, label: 'readback' });
    const copyBytes = Math.min(dataSize, src.size - offset) & ~3;
    this.copyBuffer(src, offset, staging, 0, copyBytes);
    if (armed.length) this.copyBuffer(this.assertArena!, 0, staging, dataSize, ASSERT_WORDS * 4);
    this.flush();
    this.stats.readbacks++;
    try {
      await staging.mapAsync(0x0001 /* GPUMapMode.READ */);
    } catch (e) {
      this.throwIfError(op);
      throw new TrimpiError(op, `readback failed: ${(e as Error).message}`);
    }
    if (this.pendingChecks.size) await Promise.all(this.pendingChecks);
    const mapped = staging.getMappedRange(0, size);
    const out = mapped.slice(0, bytes);
    const flags = new Uint32Array(mapped.slice(dataSize));
    staging.unmap();
    let l = this.staging.get(size);
    if (!l) this.staging.set(size, (l = []));
    l.push(staging);
    this.throwIfError(op);
    const failed = armed.filter((a) => flags[a.word] !== 0);
    if (failed.length) {
      // clear the set words (in queue order: before any later dispatch can set them again)
      const words = new Set(failed.map((a) => a.word));
      for (const w of words) this.gpu.queue.writeBuffer(this.assertArena!, w * 4, new Uint32Array(1));
      const first = failed[0];
      const shared = armed.filter((a) => a.word === first.word).length > 1 ? ' (or another call sharing its check)' : '';
      const others = failed.filter((a) => a.word !== first.word);
      const more = others.length ? `; ${others.length} more failed check(s): ${[...new Set(others.map((a) => a.op))].join(', ')}` : '';
      throw new TrimpiError(first.op, `${first.describe()}${shared} (detected on the GPU, reported at ${op}${more})`);
    }
    return out;
  }


  /** Waits for all submitted work (and surfaces errors). */
  async sync(): Promise<void> {
    this.flush();
    await this.gpu.queue.onSubmittedWorkDone();
    if (this.pendingChecks.size) await Promise.all(this.pendingChecks);
    this.throwIfError('sync');
  }

  destroy(): void {
    if (this.destroyed) return;
    this.flush();
    this.destroyed = true;
    this.pool.emptyCache();
    this.gpu.destroy();
  }
}

// ---- acquisition --------------------------------------------------------------------------------

let defaultDevice: Device | null = null;
let pending: Promise<Device> | null = null;

interface NavigatorLike { gpu?: GPU }

async function getGPU(dawnOptions: string[]): Promise<{ gpu: GPU; backend: string }> {
  const nav = (globalThis as { navigator?: NavigatorLike }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, backend: 'navigator.gpu' };
  // lavapipe/Mesa want a runtime dir; harmless elsewhere.
  if (process.platform === 'linux' && !process.env.XDG_RUNTIME_DIR) {
    const fs = await import('node:fs');
    const dir = `/tmp/xdg-runtime-${process.getuid?.() ?? 0}`;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  const webgpu = await import('webgpu');
  Object.assign(globalThis, webgpu.globals);
  const backendOpt = dawnOptions.find((o) => o.startsWith('backend='));
  return { gpu: webgpu.create(dawnOptions), backend: backendOpt ? backendOpt.slice(8) : 'dawn (default backend)' };
}

/** Thrown by init() when no WebGPU adapter is found; the message says what to install. */
export class NoAdapterError extends TrimpiError {
  constructor(detail: string) {
    super('device', `no WebGPU adapter found (${detail}). ${installHint()}`);
  }
}

/** What to install when there is no adapter (printed by `trimpi doctor` and on failure). */
export function installHint(): string {
  if (process.platform !== 'linux') return 'Install a GPU driver with Vulkan/Metal/D3D12 support.';
  return [
    'On Debian bookworm without a GPU, install Mesa\'s software Vulkan driver (lavapipe) from bookworm-backports:',
    `  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)`,
    '  echo "deb $mirror bookworm-backports main" > /etc/apt/sources.list.d/backports.list',
    '  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers',
    '(`node scripts/ensure-env.mjs` does this itself when run as root.)',
  ].join('\n');
}

/** Requests an adapter and a device with the adapter's maxima and the useful optional features. */
export async function createDevice(opts: DeviceOptions = {}): Promise<Device> {
  const { gpu, backend } = await getGPU(opts.dawnOptions ?? []);
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new NoAdapterError('requestAdapter() returned null');
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const alim = adapter.limits as unknown as Record<string, number>;
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) if (typeof alim[k] === 'number') requiredLimits[k] = alim[k];
  const gpuDevice = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'trimpi' });
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean; subgroupMinSize?: number; subgroupMaxSize?: number };
  const desc: AdapterDescription = {
    vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '',
    description: info.description ?? '', backend, isFallbackAdapter: info.isFallbackAdapter ?? false,
    subgroupMinSize: info.subgroupMinSize ?? 0, subgroupMaxSize: info.subgroupMaxSize ?? 0,
  };
  return new Device(gpuDevice, desc, opts, [gpu, adapter]);
}

/** The default device, created on first call. Ops use it unless given tensors on another device. */
export async function init(opts: DeviceOptions = {}): Promise<Device> {
  if (defaultDevice && !defaultDevice.isLost) return defaultDevice;
  pending ??= createDevice(opts).then((d) => (defaultDevice = d)).finally(() => (pending = null));
  return pending;
}

/** The default device; throws if init() has not completed. */
export function currentDevice(op = 'device'): Device {
  if (!defaultDevice) throw new TrimpiError(op, 'no device: call `await init()` before creating tensors');
  return defaultDevice;
}

/** Makes `d` the default device (e.g. one from createDevice()). */
export function setDevice(d: Device): void {
  defaultDevice = d;
}
