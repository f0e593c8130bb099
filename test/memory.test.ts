// Memory: the size-bucketed pool (uploads reuse a buffer only after a submit), tidy() scopes, dispose(), stats, and a
// training loop whose GPU memory stays flat.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { bucketSize } from '../src/index.js';
import { BufferPool } from '../src/gpu/memory.js';

let dev: t.Device;
beforeAll(async () => {
  dev = await t.init();
});

describe('buffer pool', () => {
  it('buckets sizes: powers of two up to 4 KiB, then 1/8 steps', () => {
    expect(bucketSize(1)).toBe(16);
    expect(bucketSize(17)).toBe(32);
    expect(bucketSize(4096)).toBe(4096);
    expect(bucketSize(4097)).toBe(4608);
    expect(bucketSize(1_000_000)).toBeGreaterThanOrEqual(1_000_000);
    expect(bucketSize(1_000_000)).toBeLessThan(1_000_000 * 1.125);
    for (let b = 1; b < 1 << 22; b = Math.ceil(b * 1.37)) expect(bucketSize(b) % 16).toBe(0);
  });

  it('a released buffer goes at once to GPU-written data, to host-written data only after the next submit', () => {
    const pool = new BufferPool(dev.gpu, 0x80 | 0x08);
    const a = pool.acquire(1000);
    pool.release(a);
    expect(pool.stats().bytesPendingRelease).toBe(bucketSize(1000));
    const b = pool.acquire(1000, 'upload', true);
    expect(b).not.toBe(a); // not yet submitted: an upload (queue.writeBuffer) would overtake a's commands
    const c = pool.acquire(1000);
    expect(c).toBe(a); // a dispatch into it is recorded after a's commands: safe at once
    expect(pool.stats().bytesPendingRelease).toBe(0);
    pool.release(c);
    pool.onSubmit();
    const d = pool.acquire(1000, 'upload', true);
    expect(d).toBe(a); // submitted: free for uploads too
    const s = pool.stats();
    expect(s.buffersCreated).toBe(2);
    expect(s.buffersReused).toBe(2);
    expect(s.bytesInUse).toBe(2 * bucketSize(1000));
    pool.release(b);
    pool.release(d);
    pool.onSubmit();
    expect(pool.stats().bytesPooled).toBe(2 * bucketSize(1000));
    pool.emptyCache();
    expect(pool.stats().bytesPooled).toBe(0);
  });

  it('data written to a reused buffer is not overtaken by earlier work', async () => {
    // a is computed, freed while its producer is still unsubmitted, and its memory reused by b
    for (let i = 0; i < 5; i++) {
      const a = t.arange(1000).cast('f32').mul(2);
      const s = a.sum();
      a.dispose();
      const b = t.tensor(new Float32Array(1000).fill(1));
      expect(await s.item()).toBe(999000);
      expect(await b.sum().item()).toBe(1000);
      s.dispose();
      b.dispose();
    }
  });

  it('a buffer reused before the submit by a later dispatch keeps the order of the recorded work', async () => {
    // a's memory is taken at once by c's kernel, recorded after s read a: s must still see a
    for (let i = 0; i < 5; i++) {
      const x = t.rand([1000], { seed: i });
      const a = x.mul(2);
      const s = a.sum();
      const [created, submits] = [t.memoryStats().buffersCreated, t.execStats().submits];
      a.dispose();
      const c = x.add(1);
      // a's buffer, neither a new one nor one freed by an early submit
      expect([t.memoryStats().buffersCreated, t.execStats().submits]).toEqual([created, submits]);
      const xs = await x.toArray();
      expect(await s.item()).toBeCloseTo(2 * Array.from(xs).reduce((m: number, v: number) => m + v, 0), 2);
      expect(Array.from(await c.toArray())).toEqual(Array.from(xs, (v) => Math.fround(v + 1)));
      for (const y of [x, s, c]) y.dispose();
    }
  });
});

describe('tidy and dispose', () => {
  it('frees every intermediate not returned; returned tensors survive', async () => {
    const before = t.memoryStats();
    const x = t.randn([64, 64]);
    const y = t.tidy(() => {
      const a = x.mul(2);
      const b = a.exp();
      return { out: b.sum(), list: [a.mean()] };
    });
    const after = t.memoryStats();
    expect(after.liveStorages - before.liveStorages).toBe(3); // x, out, list[0]
    expect(Number.isFinite(await y.out.item())).toBe(true);
    y.out.dispose();
    y.list[0].dispose();
    x.dispose();
    expect(t.memoryStats().liveStorages).toBe(before.liveStorages);
  });

  it('views share storage: memory is freed with the last view', () => {
    const base = t.memoryStats().liveStorages;
    const x = t.zeros([4, 4]);
    const v = x.T;
    x.dispose();
    expect(t.memoryStats().liveStorages).toBe(base + 1);
    expect(() => x.add(1)).toThrow(/used after dispose/);
    v.dispose();
    expect(t.memoryStats().liveStorages).toBe(base);
  });

  it('keep() lets a tensor escape nested scopes; an exception still frees the scope', () => {
    const base = t.memoryStats().liveStorages;
    let kept: t.Tensor | null = null;
    t.tidy(() => {
      t.tidy(() => {
        kept = t.ones([3]).keep();
        t.ones([3]);
      });
    });
    expect(t.memoryStats().liveStorages).toBe(base + 1);
    kept!.dispose();
    expect(() => t.tidy(() => {
      t.ones([5]);
      throw new Error('boom');
    })).toThrow('boom');
    expect(t.memoryStats().liveStorages).toBe(base);
    expect(() => t.tidy(() => Promise.resolve(1))).toThrow(/must be synchronous/);
  });

  it('cross-entropy never stores the (rows x vocab) probabilities', async () => {
    const [N, V] = [64, 4096];
    const logits = t.randn([N, V], { requiresGrad: true });
    const y = t.tensor(Int32Array.from({ length: N }, (_, i) => i % V));
    await dev.sync();
    t.resetPeak();
    const base = t.memoryStats().bytesInUse;
    let forwardPeak = 0;
    t.tidy(() => {
      const loss = t.crossEntropy(logits, y);
      // forward: only per-row vectors (logsumexp, picked log-probs, weights): far below one N x V buffer
      forwardPeak = t.memoryStats().peakBytesInUse - base;
      loss.backward();
    });
    expect(forwardPeak).toBeLessThan((N * V * 4) / 8);
    // backward: the gradient itself (N x V) and nothing else of that size
    expect(t.memoryStats().peakBytesInUse - base).toBeLessThan(N * V * 4 * 1.5);
    logits.dispose();
  });

  it("a training loop's GPU memory stays flat", async () => {
    const w = t.randn([32, 32], { requiresGrad: true });
    const x = t.randn([16, 32]);
    const step = (): void => {
      t.tidy(() => {
        const loss = x.matmul(w).gelu().logSoftmax(-1).mean().neg();
        loss.backward();
        t.noGrad(() => w.assign(w.sub(w.grad!.mul(0.01))));
        w.zeroGrad();
      });
    };
    for (let i = 0; i < 5; i++) step();
    await dev.sync();
    const s0 = t.memoryStats();
    for (let i = 0; i < 50; i++) step();
    await dev.sync();
    const s1 = t.memoryStats();
    expect(s1.bytesInUse).toBe(s0.bytesInUse);
    expect(s1.liveStorages).toBe(s0.liveStorages);
    expect(s1.buffersCreated).toBe(s0.buffersCreated); // everything came from the pool
    expect(s1.peakBytesInUse).toBe(s0.peakBytesInUse);
    w.dispose();
    x.dispose();
  });
});

describe('limits (issue 11)', () => {
  it('past maxLiveBuffers, allocating throws a TrimpiError saying how many buffers are alive (instead of the driver crashing)', async () => {
    const small = await t.createDevice({ maxLiveBuffers: 300 });
    try {
      const kept: t.Tensor[] = [];
      let err: unknown;
      try {
        // every step's loss kept alive: one buffer each (the pattern that reaches lavapipe's limit)
        for (let i = 0; i < 1000; i++) kept.push(t.tensor([i], { device: small }).mul(2).keep());
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(t.TrimpiError);
      expect((err as t.TrimpiError).op).toBe('memory');
      expect((err as Error).message).toMatch(/300 are alive .*the limit is 300.*dispose\(\).*tidy\(/);
      expect(small.pool.stats().liveBuffers).toBeLessThanOrEqual(300);
      // the kept tensors are intact and, once freed, their buffers serve new tensors again
      expect(await kept[0].item()).toBe(0);
      expect(await kept[kept.length - 1].item()).toBe(2 * (kept.length - 1));
      for (const k of kept) k.dispose();
      const again = t.tensor([21], { device: small }).mul(2);
      expect(await again.item()).toBe(42);
    } finally {
      small.destroy();
    }
    expect(t.memoryStats().liveBuffers).toBeGreaterThan(0);
  });

  it('constructors that throw free what they created before the error', () => {
    const base = t.memoryStats().liveStorages;
    const attempts: (() => unknown)[] = [
      () => new t.nn.TransformerBlock(8, 3), // heads do not divide the width: refused before any parameter
      () => new t.nn.TransformerBlock(8, 2, { mlpRatio: 2 ** 40 }), // the MLP's weight cannot be allocated: ln1, attn, ln2 already exist
      () => new t.nn.Linear(4, 2 ** 30), // the weight is too large for the device
      () => new t.nn.MLP(4, 2 ** 30),
      () => new t.nn.ViTEncoder({ imageSize: 16, patchSize: 8, channels: 3, dim: 8, layers: 2, heads: 2, mlpRatio: 2 ** 40 }),
      () => new t.nn.KVCache(3, 1, 2, 2 ** 26, 64),
      () => new t.nn.Linear(-1, 2),
      () => new t.nn.Embedding(2.5, 2),
    ];
    for (const make of attempts) {
      expect(make).toThrow(t.TrimpiError);
      expect(t.memoryStats().liveStorages, String(make)).toBe(base);
    }
  });
});
