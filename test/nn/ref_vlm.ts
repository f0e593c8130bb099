// The vision-language model written again on the float64 reference ops (test/reference/ref.ts),
// from the same weights: the naive attention (softmax of masked scores), plain matmuls, and the image
// tokens placed by the same gather index. Used to check the GPU model's logits and every gradient.
import * as t from '../../src/index.js';
import { Ref, concat, embedding, layerNorm } from '../reference/ref.js';

type Params = Map<string, Ref>;

/** Every parameter of a GPU module as a float64 leaf that requires grad. */
export async function refParams(model: t.nn.Module): Promise<Params> {
  const out: Params = new Map();
  for (const [name, p] of model.namedParameters()) out.set(name, new Ref(await p.value.toArray(), [...p.value.shape], { requiresGrad: true }));
  return out;
}

const get = (ps: Params, name: string): Ref => {
  const r = ps.get(name);
  if (!r) throw new Error(`reference: no parameter ${name}`);
  return r;
};

function refLinear(ps: Params, name: string, x: Ref, gelu = false): Ref {
  const y = x.matmul(get(ps, `${name}.weight`)).add(get(ps, `${name}.bias`));
  return gelu ? y.gelu() : y;
}

function refLayerNorm(ps: Params, name: string, x: Ref, eps: number): Ref {
  const w = get(ps, `${name}.weight`);
  return layerNorm(x, [w.shape[0]], w, get(ps, `${name}.bias`), eps);
}

/** Naive attention with a causal flag and a (B, Tk) key-valid mask (1 = a real key); rows that see no key give zeros. */
function refAttention(q: Ref, k: Ref, v: Ref, causal: boolean, pad: number[][] | null): Ref {
  const [B, , Tq, D] = q.shape;
  const Tk = k.shape[2];
  const hidden: number[] = [];
  const seen: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Tq; i++) {
      let any = 0;
      for (let j = 0; j < Tk; j++) {
        const vis = (!pad || pad[b][j] !== 0) && (!causal || j <= i + (Tk - Tq));
        hidden.push(vis ? 0 : 1);
        if (vis) any = 1;
      }
      seen.push(any);
    }
  }
  const s = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(D));
  return s.maskedFill(new Ref(hidden, [B, 1, Tq, Tk]), -1e9).softmax(-1).mul(new Ref(seen, [B, 1, Tq, 1])).matmul(v);
}

/** Rotary positions in float64: each (b, t) pair of halves (x₁, x₂) turned by position · 10000^(−2j/D). */
function refRotate(x: Ref, positions: ArrayLike<number>): Ref {
  const [B, , T, D] = x.shape;
  const half = D / 2;
  const cos: number[] = [];
  const sin: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < half; j++) {
        const a = positions[b * T + t] * Math.pow(10000, (-2 * j) / D);
        cos.push(Math.cos(a));
        sin.push(Math.sin(a));
      }
    }
  }
  const c = new Ref(cos, [B, 1, T, half]);
  const s = new Ref(sin, [B, 1, T, half]);
  const x1 = x.slice(3, 0, half);
  const x2 = x.slice(3, half, D);
  return concat([x1.mul(c).sub(x2.mul(s)), x2.mul(c).add(x1.mul(s))], 3);
}

function refBlock(ps: Params, name: string, x: Ref, heads: number, causal: boolean, pad: number[][] | null, eps: number, positions: ArrayLike<number> | null = null): Ref {
  const [B, T, C] = x.shape;
  const D = C / heads;
  const qkv = refLinear(ps, `${name}.attn.qkv`, refLayerNorm(ps, `${name}.ln1`, x, eps));
  const split = (i: number): Ref => qkv.slice(2, i * C, (i + 1) * C).reshape([B, T, heads, D]).permute([0, 2, 1, 3]);
  const rot = (r: Ref): Ref => (positions ? refRotate(r, positions) : r);
  const y = refAttention(rot(split(0)), rot(split(1)), split(2), causal, pad).permute([0, 2, 1, 3]).reshape([B, T, C]);
  const h = x.add(refLinear(ps, `${name}.attn.proj`, y));
  const m = refLinear(ps, `${name}.mlp.proj`, refLinear(ps, `${name}.mlp.fc`, refLayerNorm(ps, `${name}.ln2`, h, eps), true));
  return h.add(m);
}

/** Logits (B, T, V) of the model on a prepared batch, in float64. images: (N, C, H, W) values. */
export function refVlmLogits(ps: Params, cfg: t.nn.VlmConfig, batch: t.nn.VlmBatch, images: Ref | null): Ref {
  const { B, T } = batch;
  const eps = cfg.layerNormEps;
  const tok = embedding(new Ref(batch.ids, [B, T], { dtype: 'i32' }), get(ps, 'decoder.wte.weight'));
  let x = tok;
  if (images && batch.numImages > 0) {
    const [N, Ch, S] = images.shape;
    const p = cfg.patchSize;
    const g = S / p;
    const patches = images.reshape([N, Ch, g, p, g, p]).permute([0, 2, 4, 1, 3, 5]).reshape([N, g * g, Ch * p * p]);
    let v = refLinear(ps, 'vision.patch.proj', patches).add(get(ps, 'vision.pos'));
    for (let l = 0; l < cfg.visionLayers; l++) v = refBlock(ps, `vision.blocks.${l}`, v, cfg.visionHeads, false, null, eps);
    v = refLayerNorm(ps, 'vision.ln_f', v, eps);
    const k = cfg.mergeSize ?? 1;
    if (k > 1) {
      // merged token (i, j) of a (g/k)² grid = its k × k patches, row by row, side by side in features
      const m = g / k;
      const Cv = cfg.visionDim;
      const rows: number[] = [];
      for (let n = 0; n < N; n++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < m; j++) {
            for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) rows.push(n * g * g + (i * k + a) * g + (j * k + b));
          }
        }
      }
      v = v.reshape([N * g * g, Cv]).indexSelect(0, new Ref(rows, [rows.length], { dtype: 'i32' })).reshape([N, m * m, k * k * Cv]);
    }
    const img = refLinear(ps, 'projector', v).reshape([-1, cfg.dim]);
    const index = Array.from(batch.imageRow, (r, i) => (r < 0 ? i : B * T + r));
    x = concat([tok.reshape([B * T, cfg.dim]), img], 0).indexSelect(0, new Ref(index, [B * T], { dtype: 'i32' })).reshape([B, T, cfg.dim]);
  }
  const rope = cfg.positionEncoding === 'rope';
  if (!rope) x = x.add(embedding(new Ref(batch.positions, [B, T], { dtype: 'i32' }), get(ps, 'decoder.wpe.weight')));
  const padded = batch.attention.some((a) => a === 0);
  const pad = padded ? Array.from({ length: B }, (_, b) => Array.from(batch.attention.subarray(b * T, (b + 1) * T))) : null;
  for (let l = 0; l < cfg.layers; l++) x = refBlock(ps, `decoder.blocks.${l}`, x, cfg.heads, true, pad, eps, rope ? batch.positions : null);
  x = refLayerNorm(ps, 'decoder.ln_f', x, eps);
  return x.matmul(get(ps, 'decoder.wte.weight').transpose(0, 1));
}
