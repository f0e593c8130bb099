// GPU memory: a size-bucketed buffer pool and reference-counted storages (the tensor-level tidy()
// scopes are in src/tensor/memory.ts).
//
// Nothing here relies on GC finalizers: every GPU buffer goes back to the pool through an explicit
// dispose(), either called by the user or by the tidy() scope that created the tensor. A released
// buffer whose commands are not yet submitted (release() parks it until onSubmit()) is handed out
// again at once for GPU-written data: a later dispatch into it is recorded after those commands and
// runs after them. Data written from the host (queue.writeBuffer, which runs before the whole pending
// batch) gets only submitted buffers, so an upload can never overtake the commands of a buffer's
// previous life; when none is free, the device submits (onPressure) rather than growing.
//
// Live buffers are counted: drivers have a hard limit (lavapipe maps every buffer, and past Linux's
// ~65,530 mappings the process dies with SIGSEGV), so the pool refuses to create buffer number
// maxLiveBuffers + 1 with a TrimpiError that says how many are alive (after destroying its free ones).
import { TrimpiError } from './errors.js';

/** GPU memory counters of a device's buffer pool (memoryStats()). */
export interface MemoryStats {
  /** Bytes of buffers handed out to live storages (bucket sizes). */
  bytesInUse: number;
  /** Highest bytesInUse seen since start or the last resetPeak(). */
  peakBytesInUse: number;
  /** Bytes of free buffers kept for reuse. */
  bytesPooled: number;
  /** Bytes released but waiting for the next submit before they can be reused. */
  bytesPendingRelease: number;
  /** GPU buffers created by the pool over its lifetime. */
  buffersCreated: number;
  /** acquire() calls answered from the pool without creating a buffer. */
  buffersReused: number;
  /** Live storages (tensors' backing buffers, shared by views). */
  liveStorages: number;
  /**
   * GPU buffers the pool holds now (in use, pooled or waiting for a submit): created and not yet
   * destroyed. The pool refuses to create more than its maxLiveBuffers (DeviceOptions.maxLiveBuffers).
   */
  liveBuffers: number;
}

/**
 * Bucket for a request: powers of two up to 4 KiB, then 8 steps per power of two
 * (waste at most 12.5%), all multiples of 16 bytes.
 */
export function bucketSize(bytes: number): number {
  const b = Math.max(bytes, 16);
  if (b <= 4096) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  /** Released buffers whose commands are not yet submitted, by size. */
  private pending = new Map<number, GPUBuffer[]>();
  /**
   * Called when a host-written request could be served by a buffer that only waits for a submit; the
   * device submits (which calls onSubmit()), so memory is recycled instead of growing between submits.
   */
  onPressure: (() => void) | null = null;
  private s = { bytesInUse: 0, peakBytesInUse: 0, bytesPooled: 0, bytesPendingRelease: 0, buffersCreated: 0, buffersReused: 0 };
  liveStorages = 0;
  /** Buffers created and not destroyed. */
  liveBuffers = 0;
  /** Most live buffers allowed (default 60,000: below lavapipe's ~65,530 mappings). */
  maxLiveBuffers = 60_000;

  constructor(private readonly device: GPUDevice, private readonly usage: GPUBufferUsageFlags) {}

  /**
   * A buffer of at least `bytes`. `hostWrite`: its first contents will come from queue.writeBuffer,
   * so it must not be one whose previous commands are still unsubmitted (see the top of this file).
   */
  acquire(bytes: number, label?: string, hostWrite = false): GPUBuffer {
    const size = bucketSize(bytes);
    const parked = this.pending.get(size);
    let buf: GPUBuffer | undefined;
    if (!hostWrite && parked?.length) {
      buf = parked.pop()!;
      this.s.bytesPendingRelease -= size;
      this.s.buffersReused++;
    } else {
      if (!this.free.get(size)?.length && parked?.length && this.onPressure) this.onPressure();
      buf = this.free.get(size)?.pop();
      if (buf) {
        this.s.bytesPooled -= size;
        this.s.buffersReused++;
      }
    }
    if (!buf) {
      if (this.liveBuffers >= this.maxLiveBuffers) {
        // free buffers of other sizes count too: give them back to the driver first
        this.emptyCache();
        if (this.liveBuffers >= this.maxLiveBuffers) {
          throw new TrimpiError('memory', `cannot create another GPU buffer${label ? ` (${label})` : ''}: ${this.liveBuffers} are alive (${this.liveStorages} tensors' storages, `
            + `${[...this.pending.values()].reduce((n, l) => n + l.length, 0)} waiting for a submit), the limit is ${this.maxLiveBuffers} (drivers fail past ~65,000: lavapipe crashes). `
            + 'Free tensors you no longer need with dispose(), or create them inside tidy(() => ...); keeping e.g. every step\'s loss tensor '
            + 'alive adds one buffer per step (read it with await loss.item() and dispose it). The limit is DeviceOptions.maxLiveBuffers / TRIMPI_MAX_BUFFERS.');
        }
      }
      buf = this.device.createBuffer({ size, usage: this.usage, label });
      this.s.buffersCreated++;
      this.liveBuffers++;
    }
    this.s.bytesInUse += size;
    if (this.s.bytesInUse > this.s.peakBytesInUse) this.s.peakBytesInUse = this.s.bytesInUse;
    return buf;
  }

  /** Returns a buffer; it becomes reusable after the next submit. */
  release(buf: GPUBuffer): void {
    this.s.bytesInUse -= buf.size;
    this.s.bytesPendingRelease += buf.size;
    let list = this.pending.get(buf.size);
    if (!list) this.pending.set(buf.size, (list = []));
    list.push(buf);
  }

  /** Called by the device right after queue.submit(): parked buffers become reusable. */
  onSubmit(): void {
    for (const [size, bufs] of this.pending) {
      let list = this.free.get(size);
      if (!list) this.free.set(size, (list = []));
      list.push(...bufs);
      this.s.bytesPooled += size * bufs.length;
    }
    this.s.bytesPendingRelease = 0;
    this.pending.clear();
  }

  /** Destroys every free buffer (pending ones stay until submitted). */
  emptyCache(): void {
    for (const list of this.free.values()) {
      for (const b of list) b.destroy();
      this.liveBuffers -= list.length;
    }
    this.free.clear();
    this.s.bytesPooled = 0;
  }

  resetPeak(): void {
    this.s.peakBytesInUse = this.s.bytesInUse;
  }

  stats(): MemoryStats {
    return { ...this.s, liveStorages: this.liveStorages, liveBuffers: this.liveBuffers };
  }
}

/** A GPU buffer shared by a tensor and its views; freed when the last of them is disposed. */
export class Storage {
  private refs = 1;
  /**
   * Bumped by every in-place write into the buffer (assign, addInPlace, optimizer steps): autograd
   * records it for the tensors a gradient rule reads, and backward() refuses a stale one.
   */
  version = 0;
  constructor(readonly buffer: GPUBuffer, readonly byteLength: number, private readonly pool: BufferPool) {
    pool.liveStorages++;
  }
  get alive(): boolean {
    return this.refs > 0;
  }
  /** Number of live tensors (views) sharing this buffer. */
  get refCount(): number {
    return this.refs;
  }
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) {
      this.pool.liveStorages--;
      this.pool.release(this.buffer);
    }
  }
}
