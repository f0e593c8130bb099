// TensorFlow.js's WebGPU backend on this engine's Dawn device, with the benchmark's workloads
// written the way a tfjs user would (matmul → softmax → matmul attention, composed layer norm, a
// pre-LN block trained with tf.train.adam).
import type * as TF from '@tensorflow/tfjs-core';
import type { Device } from '../src/index.js';

type T = TF.Tensor;

export interface TfjsSide {
  tf: typeof TF;
  randn(shape: number[]): T;
  /**
   * Runs fn and waits for its results the way a tfjs user does, by reading them back (data()):
   * tfjs offers no public "wait for the queue", and submitting its encoder does not wait for uploads.
   */
  run(fn: () => T | T[] | void): Promise<void>;
  crossEntropyFwdBwd(N: number, V: number): T[];
  layerNorm(N: number, V: number): T;
  attentionFwd(BH: number, T: number, D: number): T;
  attentionFwdBwd(BH: number, T: number, D: number): T[];
  blockStep(B: number, T: number, d: number, H: number, F: number): T;
  dispose(): void;
}

export async function loadTfjs(dev: Device): Promise<TfjsSide> {
  // tfjs-webgpu checks navigator.gpu; Node 20 has no navigator
  const g = globalThis as { navigator?: { gpu?: unknown } };
  g.navigator ??= {};
  g.navigator.gpu ??= dev.owners[0];
  // the union package: its Node bundle registers every op's gradient (tfjs-core's alone does not)
  const tf = (await import('@tensorflow/tfjs')) as unknown as typeof TF;
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new WebGPUBackend(dev.gpu, { vendor: dev.adapter.vendor, architecture: dev.adapter.architecture } as GPUAdapterInfo));
  await tf.setBackend('webgpu');
  await tf.ready();
  const cache = new Map<string, T[]>();
  const keep = (key: string, make: () => T[]): T[] => {
    let v = cache.get(key);
    if (!v) cache.set(key, (v = tf.tidy(make).map((x) => tf.keep(x))));
    return v;
  };
  const randn = (shape: number[]): T => tf.randomNormal(shape);
  const causalBias = (n: number): T => tf.tidy(() => tf.mul(tf.sub(tf.linalg.bandPart(tf.ones([n, n]), -1, 0), 1), 1e9));
  const attn = (q: T, k: T, v: T, bias: T, D: number): T =>
    tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(D)), bias)), v);
  const layerNormOf = (x: T, w: T, b: T): T => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), w), b);
  };
  const blocks = new Map<string, { vars: TF.Variable[]; opt: TF.Optimizer; x: T; bias: T }>();

  return {
    tf,
    randn,
    async run(fn) {
      const out = tf.tidy(fn);
      const list = out ? (Array.isArray(out) ? out : [out]) : [];
      await Promise.all(list.map((x) => x.data()));
      tf.dispose(list);
    },
    crossEntropyFwdBwd(N, V) {
      const [logits, labels] = keep(`ce${N}x${V}`, () => [randn([N, V]), tf.oneHot(tf.tensor1d(Array.from({ length: N }, (_, i) => (i * 7) % V), 'int32'), V)]);
      return [tf.grad((l: T) => tf.losses.softmaxCrossEntropy(labels, l))(logits)];
    },
    layerNorm(N, V) {
      const [x, w, b] = keep(`ln${N}x${V}`, () => [randn([N, V]), tf.ones([V]), tf.zeros([V])]);
      return layerNormOf(x, w, b);
    },
    attentionFwd(BH, T, D) {
      const [q, k, v, bias] = keep(`at${BH}x${T}x${D}`, () => [randn([BH, T, D]), randn([BH, T, D]), randn([BH, T, D]), causalBias(T)]);
      return attn(q, k, v, bias, D);
    },
    attentionFwdBwd(BH, T, D) {
      const [q, k, v, bias, dy] = keep(`atb${BH}x${T}x${D}`, () => [randn([BH, T, D]), randn([BH, T, D]), randn([BH, T, D]), causalBias(T), randn([BH, T, D])]);
      return tf.grads((a: T, b: T, c: T) => attn(a, b, c, bias, D))([q, k, v], dy);
    },
    blockStep(B, T, d, H, F) {
      const key = `${B}x${T}x${d}x${H}x${F}`;
      let blk = blocks.get(key);
      if (!blk) {
        const v = (s: number[], init: 'n' | 0 | 1): TF.Variable => tf.variable(init === 'n' ? tf.mul(randn(s), 0.02) : init === 0 ? tf.zeros(s) : tf.ones(s));
        blk = {
          vars: [v([d], 1), v([d], 0), v([d, 3 * d], 'n'), v([3 * d], 0), v([d, d], 'n'), v([d], 0), v([d], 1), v([d], 0), v([d, F], 'n'), v([F], 0), v([F, d], 'n'), v([d], 0)],
          opt: tf.train.adam(1e-3), x: tf.keep(randn([B, T, d])), bias: tf.keep(causalBias(T)),
        };
        blocks.set(key, blk);
      }
      const [ln1w, ln1b, wqkv, bqkv, wo, bo, ln2w, ln2b, w1, b1, w2, b2] = blk.vars;
      const { x, bias } = blk;
      const dh = d / H;
      return blk.opt.minimize(() => {
        const gelu = (z: T): T => tf.mul(tf.mul(z, 0.5), tf.add(tf.erf(tf.mul(z, Math.SQRT1_2)), 1));
        const h = tf.reshape(layerNormOf(x, ln1w, ln1b), [B * T, d]);
        const qkv = tf.transpose(tf.reshape(tf.add(tf.matMul(h, wqkv), bqkv), [B, T, 3, H, dh]), [2, 0, 3, 1, 4]);
        const [q, k, v] = tf.unstack(qkv).map((z) => tf.reshape(z, [B * H, T, dh]));
        const att = tf.reshape(tf.transpose(tf.reshape(attn(q, k, v, bias, dh), [B, H, T, dh]), [0, 2, 1, 3]), [B * T, d]);
        const x1 = tf.add(x, tf.reshape(tf.add(tf.matMul(att, wo), bo), [B, T, d]));
        const f = tf.add(tf.matMul(gelu(tf.add(tf.matMul(tf.reshape(layerNormOf(x1, ln2w, ln2b), [B * T, d]), w1), b1)), w2), b2);
        const y = tf.add(x1, tf.reshape(f, [B, T, d]));
        return tf.mean(tf.square(y)) as TF.Scalar;
      }, true) as T;
    },
    dispose() {
      for (const v of cache.values()) tf.dispose(v);
      for (const b of blocks.values()) {
        tf.dispose(b.vars);
        tf.dispose([b.x, b.bias]);
        b.opt.dispose();
      }
    },
  };
}
