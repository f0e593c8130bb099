// `npm run bench`: kernel benchmarks of this engine and the same operations through TensorFlow.js's
// WebGPU backend on the same Dawn device in the same run. Prints, per kernel and size: the median
// time, GFLOP/s or GB/s, the floor (FLOPs over the measured compute ceiling, bytes over the measured
// streaming ceiling) and how far from it we are, tfjs's time and the ratio. Writes JSON
// (--out, default bench/results.json) and, with --md FILE, the markdown table for bench/RESULTS.md.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as t from '../src/index.js';
import { AdamW } from '../src/nn/optim.js';
import { measureComputeCeiling, measureStreamingCeiling } from './ceilings.js';
import type * as TF from '@tensorflow/tfjs-core';
import { TfjsSide, loadTfjs } from './tfjs.js';

interface Row {
  kernel: string;
  size: string;
  ms: number;
  rate: string;
  floorMs: number;
  ofFloor: number;
  tfjsMs: number | null;
  /** Median over interleaved pairs of tfjs time / ours. */
  ratio: number | null;
  target: string;
  /** Our fastest and slowest sample (per call). */
  spread: string;
  /** Interquartile range of the per-pair ratio. */
  ratioIqr: string | null;
  samples: number;
  /** Why the figures may be off (load, steal), or null. */
  busy: string | null;
}

const args = process.argv.slice(2);
const argValue = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = argValue('--only');
const quick = args.includes('--quick');

/** Seconds per call of each sample, median, quartiles and extremes. */
interface Samples {
  all: number[];
  median: number;
  q1: number;
  q3: number;
  min: number;
  max: number;
}

function summarize(xs: number[]): Samples {
  const s = [...xs].sort((a, b) => a - b);
  const at = (f: number): number => s[Math.min(s.length - 1, Math.max(0, Math.round(f * (s.length - 1))))];
  return { all: xs, median: at(0.5), q1: at(0.25), q3: at(0.75), min: s[0], max: s[s.length - 1] };
}

/**
 * The machine's CPU counters (Linux /proc/stat, in seconds at USER_HZ = 100): busy (everything but
 * idle and iowait), stolen by the hypervisor, and the total; plus this process's own CPU seconds (all
 * its threads, lavapipe's included). Zeros where /proc/stat is missing.
 */
function machineLoad(): { busy: number; steal: number; total: number; own: number } {
  const u = process.cpuUsage();
  const own = (u.user + u.system) / 1e6;
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = cpu.reduce((a, b) => a + b, 0) / 100;
    return { busy: total - ((cpu[3] ?? 0) + (cpu[4] ?? 0)) / 100, steal: (cpu[7] ?? 0) / 100, total, own };
  } catch {
    return { busy: 0, steal: 0, total: 0, own };
  }
}

/**
 * Times two sides sample by sample, interleaved (ours, theirs, ours, …) so that a slow phase of the
 * machine hits both alike: at least `minSamples` pairs, more until each side has had ~`seconds`.
 * Returns each side's samples and the per-pair ratio theirs / ours, with a warning when the machine
 * was busy (other processes took more than 10% of the CPU time, or more than 2% was stolen).
 */
async function interleaved(ours: () => Promise<void>, theirs: (() => Promise<void>) | null): Promise<{ ours: Samples; theirs: Samples | null; ratio: Samples | null; busy: string | null }> {
  await ours(); // compile pipelines, fill pools
  if (theirs) await theirs();
  const minSamples = quick ? 5 : 11;
  const seconds = quick ? 1 : 3;
  const a: number[] = [];
  const b: number[] = [];
  const before = machineLoad();
  let spent = 0;
  while (a.length < minSamples || (spent < seconds && a.length < 101)) {
    let t0 = performance.now();
    await ours();
    a.push((performance.now() - t0) / 1000);
    if (theirs) {
      t0 = performance.now();
      await theirs();
      b.push((performance.now() - t0) / 1000);
    }
    spent += a[a.length - 1];
  }
  const after = machineLoad();
  // other processes' share of the CPU time while measuring (the bench's own threads excluded)
  const span = after.total - before.total;
  const others = span > 0 ? Math.max(0, (after.busy - before.busy) - (after.own - before.own)) / span : 0;
  const stolen = span > 0 ? (after.steal - before.steal) / span : 0;
  const busy = others > 0.1 || stolen > 0.02
    ? `machine busy while measuring (other processes used ${(others * 100).toFixed(0)}% of the CPU time, ${(stolen * 100).toFixed(1)}% stolen)` : null;
  return { ours: summarize(a), theirs: theirs ? summarize(b) : null, ratio: theirs ? summarize(b.map((x, i) => x / a[i])) : null, busy };
}

async function main(): Promise<void> {
  const dev = await t.init();
  const adapter = `${dev.adapter.description || dev.adapter.device} (${dev.adapter.vendor}, ${dev.adapter.backend})`;
  console.log(`device: ${adapter}`);
  const gflops = await measureComputeCeiling(dev);
  const gbs = await measureStreamingCeiling(dev);
  console.log(`measured ceilings: compute ${gflops.toFixed(1)} GFLOP/s (f32 FMA), streaming ${gbs.toFixed(1)} GB/s (vec4 copy)\n`);
  const tf: TfjsSide = await loadTfjs(dev);
  const rows: Row[] = [];
  let blockProfile: { op: string; kernel: string; calls: number; ms: number; share: number }[] = [];
  const floor = (flops: number, bytes: number): number => Math.max(flops / gflops / 1e6, bytes / gbs / 1e6);
  // both sides wait by reading their result back, as a user would
  const read = async (x: t.Tensor | t.Tensor[]): Promise<void> => {
    const list = Array.isArray(x) ? x : [x];
    await Promise.all(list.map((y) => y.toArray()));
    for (const y of list) y.dispose();
  };

  /**
   * Times `reps` back-to-back calls of each side per sample, reading back only the last result (the
   * readback is how both sides wait, and amortising it keeps bandwidth-bound kernels measurable).
   */
  async function compare(kernel: string, size: string, flops: number, bytes: number, ours: () => t.Tensor | t.Tensor[], theirs: (() => TF.Tensor | TF.Tensor[]) | null,
    target: string, rateKind: 'flops' | 'bytes' = 'flops', reps = 1): Promise<void> {
    if (only && !kernel.includes(only)) return;
    const m = await interleaved(async () => {
      let last: t.Tensor | t.Tensor[] | null = null;
      for (let i = 0; i < reps; i++) {
        if (last) for (const x of [last].flat()) x.dispose();
        last = t.tidy(ours);
      }
      await read(last!);
    }, theirs ? () => tf.run(() => {
      let last: TF.Tensor | TF.Tensor[] = theirs();
      for (let i = 1; i < reps; i++) last = theirs();
      return last;
    }) : null);
    const s = m.ours.median / reps;
    const ts = m.theirs ? m.theirs.median / reps : null;
    const ms = s * 1e3;
    const fl = floor(flops, bytes);
    const row: Row = {
      kernel, size, ms,
      rate: rateKind === 'flops' ? `${(flops / s / 1e9).toFixed(2)} GFLOP/s` : `${(bytes / s / 1e9).toFixed(2)} GB/s`,
      floorMs: fl, ofFloor: fl / ms, tfjsMs: ts === null ? null : ts * 1e3, ratio: m.ratio ? m.ratio.median : null, target,
      spread: `${((m.ours.min / reps) * 1e3).toFixed(2)}-${((m.ours.max / reps) * 1e3).toFixed(2)} ms`,
      ratioIqr: m.ratio ? `${m.ratio.q1.toFixed(2)}-${m.ratio.q3.toFixed(2)}` : null, samples: m.ours.all.length, busy: m.busy,
    };
    rows.push(row);
    console.log(`${kernel.padEnd(28)} ${size.padEnd(22)} ${ms.toFixed(2).padStart(9)} ms [${row.spread}, ${row.samples} samples]  ${row.rate.padStart(14)}  floor ${fl.toFixed(2).padStart(8)} ms (${(row.ofFloor * 100).toFixed(0).padStart(3)}%)  ` +
      `tfjs ${row.tfjsMs === null ? '      -' : row.tfjsMs.toFixed(2).padStart(9) + ' ms'}  ${row.ratio === null ? '' : `x${row.ratio.toFixed(2)} (IQR ${row.ratioIqr})`}  ${target}`);
    if (m.busy) console.log(`  warning: ${m.busy}`);
  }

  // ---- matmul tile sweep (--tune; kernels/matmul.ts tuneMatmulTiles): the winners apply to the rest of this run;
  // off by default: the isolated winners made the cpu preset's decode step slower (0.87x, bench/RESULTS.md);
  // the preset's cases at the rows of the preset benchmark below (256 text tokens a sequence)
  let tiles: t.MatmulTuneResult[] = [];
  if (args.includes('--tune') && !only) {
    const squares = (quick ? [256] : [256, 512, 1024]).map((n) => ({ M: n, N: n, K: n }));
    tiles = await t.tuneMatmulTiles(dev, [...squares, ...t.nn.presetMatmulCases('cpu', t.data.defaultTokenizer().size, { textTokens: 256 })], { rounds: 5, reps: 2 });
    t.applyMatmulTuneResults(dev, tiles);
    for (const r of tiles) {
      console.log(`tile sweep ${t.describeTuneCases(r).padEnd(40)} untuned ${r.heuristicMs.toFixed(2).padStart(8)} ms  tuned ${r.ms.toFixed(2).padStart(8)} ms (tile ${t.describeTuneTile(r)})  x${(r.heuristicMs / r.ms).toFixed(2)}`);
    }
  }

  // ---- matmul ------------------------------------------------------------------------------------
  for (const n of quick ? [256] : [256, 512, 1024]) {
    const a = t.randn([n, n]);
    const b = t.randn([n, n]);
    const ta = tf.randn([n, n]);
    const tb = tf.randn([n, n]);
    await compare('matmul f32', `${n}x${n}x${n}`, 2 * n ** 3, 3 * n * n * 4,
      () => a.matmul(b), () => tf.tf.matMul(ta, tb), n === 1024 ? '>= 5x tfjs' : '>= 4x tfjs', 'flops', n >= 1024 ? 1 : n >= 512 ? 2 : 5);
    a.dispose(); b.dispose(); ta.dispose(); tb.dispose();
  }

  // ---- softmax -------------------------------------------------------------------------------------
  {
    const [R, C] = quick ? [1024, 1024] : [4096, 1024];
    const x = t.randn([R, C]);
    const tx = tf.randn([R, C]);
    await compare('softmax', `[${R}, ${C}]`, 5 * R * C, 2 * R * C * 4,
      () => x.softmax(-1), () => tf.tf.softmax(tx), '>= 6x tfjs, >= 60% streaming', 'bytes', 10);
    x.dispose(); tx.dispose();
  }

  // ---- cross-entropy and layer norm (no tfjs target; floors only) ----------------------------------------
  {
    const [N, V] = quick ? [256, 512] : [2048, 1024];
    const logits = t.randn([N, V], { requiresGrad: true });
    const y = t.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7) % V));
    await compare('crossEntropy fwd+bwd', `[${N}, ${V}]`, 8 * N * V, 3 * N * V * 4,
      () => { t.crossEntropy(logits, y).backward(); const g = logits.grad!; logits.grad = null; return g; },
      () => tf.crossEntropyFwdBwd(N, V), 'fused: never stores probabilities', 'bytes', 5);
    logits.dispose(); y.dispose();
    const x = t.randn([N, V]);
    const w = t.ones([V]);
    const bb = t.zeros([V]);
    await compare('layerNorm fwd', `[${N}, ${V}]`, 8 * N * V, 2 * N * V * 4,
      () => t.layerNorm(x, [V], w, bb), () => tf.layerNorm(N, V), '', 'bytes', 10);
    x.dispose(); w.dispose(); bb.dispose();
  }

  // ---- attention -------------------------------------------------------------------------------------
  const attention = (t as unknown as { attention?: (q: t.Tensor, k: t.Tensor, v: t.Tensor, o: { causal: boolean }) => t.Tensor }).attention;
  if (attention) {
    const [B, H, T, D] = [2, 4, quick ? 128 : 256, 64];
    const q = t.randn([B, H, T, D], { requiresGrad: true });
    const k = t.randn([B, H, T, D], { requiresGrad: true });
    const v = t.randn([B, H, T, D], { requiresGrad: true });
    const g = t.randn([B, H, T, D]);
    const flops = 4 * B * H * T * T * D * 0.5;
    await compare('attention fwd causal', `BH=${B * H} T=${T} D=${D}`, flops, 4 * B * H * T * D * 4,
      () => t.noGrad(() => attention(q, k, v, { causal: true })), () => tf.attentionFwd(B * H, T, D), '>= 8x tfjs (matmul-softmax-matmul)', 'flops', 3);
    await compare('attention fwd+bwd causal', `BH=${B * H} T=${T} D=${D}`, 3.5 * flops, 8 * B * H * T * D * 4,
      () => { attention(q, k, v, { causal: true }).backward(g); return [q, k, v].map((p) => { const x = p.grad!; p.grad = null; return x; }); },
      () => tf.attentionFwdBwd(B * H, T, D), '>= 5x tfjs', 'flops', 2);
    for (const p of [q, k, v, g]) p.dispose();
  }

  // ---- one training step of a pre-LN transformer block ---------------------------------------------------
  if (attention) {
    const [B, T, d, H, F] = [4, 64, 128, 4, 512];
    const P = (shape: number[], std: number): t.Tensor => t.randn(shape, { std, requiresGrad: true });
    const p = { ln1w: t.ones([d], { requiresGrad: true }), ln1b: t.zeros([d], { requiresGrad: true }), wqkv: P([d, 3 * d], 0.02), bqkv: t.zeros([3 * d], { requiresGrad: true }),
      wo: P([d, d], 0.02), bo: t.zeros([d], { requiresGrad: true }), ln2w: t.ones([d], { requiresGrad: true }), ln2b: t.zeros([d], { requiresGrad: true }),
      w1: P([d, F], 0.02), b1: t.zeros([F], { requiresGrad: true }), w2: P([F, d], 0.02), b2: t.zeros([d], { requiresGrad: true }) };
    const opt = new AdamW(Object.values(p), { lr: 1e-3 });
    const x = t.randn([B, T, d]);
    const step = (): t.Tensor => {
      const h = t.layerNorm(x, [d], p.ln1w, p.ln1b);
      const qkv = t.linear(h, p.wqkv, p.bqkv).reshape([B, T, 3, H, d / H]).permute([2, 0, 3, 1, 4]);
      const att = attention(qkv.slice(0, 0, 1).squeeze(0), qkv.slice(0, 1, 2).squeeze(0), qkv.slice(0, 2, 3).squeeze(0), { causal: true });
      const x1 = x.add(t.linear(att.permute([0, 2, 1, 3]).reshape([B, T, d]), p.wo, p.bo));
      const y = x1.add(t.linear(t.linear(t.layerNorm(x1, [d], p.ln2w, p.ln2b), p.w1, p.b1, 'gelu'), p.w2, p.b2));
      const loss = y.square().mean();
      loss.backward();
      opt.stepUpdate();
      opt.zeroGrad();
      return loss;
    };
    const tokens = B * T;
    const flops = 6 * tokens * (4 * d * d + 2 * d * F) + 3 * 2 * B * H * T * T * (d / H);
    await compare('transformer block step', `B=${B} T=${T} d=${d} H=${H} F=${F}`, flops, 0,
      step, () => tf.blockStep(B, T, d, H, F), '>= 5x tfjs (fwd+bwd+AdamW)', 'flops', 2);
    // where the step's GPU time goes (timestamp queries), for the analysis
    if (dev.features.has('timestamp-query') && (!only || 'transformer block step'.includes(only))) {
      const steps = 5;
      const rep = await t.profile(async () => {
        for (let i = 0; i < steps; i++) await read(t.tidy(step));
      });
      blockProfile = rep.kernels.slice(0, 12).map((k) => ({ op: k.op, kernel: k.kernel.split('|').slice(0, 3).join('|'), calls: k.calls / steps, ms: k.ms / steps, share: k.ms / rep.gpuMs }));
      console.log(`\ntransformer block step, GPU time by kernel over ${steps} steps:\n${t.formatProfile(rep, 12)}\n`);
    }
    opt.dispose();
  }

  // ---- host overhead per dispatch: 1,000 small element-wise ops recorded, then one readback ----------
  let dispatchOverhead: { hostUs: number; hostMinUs: number; hostMaxUs: number; gpuUs: number } | null = null;
  if (!only || 'dispatch'.includes(only)) {
    const x = t.rand([256], { seed: 1 });
    const chain = (): t.Tensor => t.tidy(() => {
      let y = x;
      for (let i = 0; i < 1000; i++) y = t.add(y, 1);
      return y;
    });
    await read(chain()); // compiles
    const hostUs: number[] = [];
    for (let r = 0; r < 9; r++) {
      const n0 = dev.stats.dispatches;
      const t0 = performance.now();
      const y = chain();
      const us = ((performance.now() - t0) * 1000) / (dev.stats.dispatches - n0);
      await read(y);
      hostUs.push(us);
    }
    hostUs.sort((a, b) => a - b);
    let gpuUs = 0;
    if (dev.features.has('timestamp-query')) {
      const rep = await t.profile(async () => read(chain()));
      gpuUs = (rep.gpuMs * 1000) / rep.kernels.reduce((n, k) => n + k.calls, 0);
    }
    dispatchOverhead = { hostUs: hostUs[4], hostMinUs: hostUs[0], hostMaxUs: hostUs[8], gpuUs };
    console.log(`dispatch overhead (1,000 adds of 256 floats, 9 runs): host ${hostUs[4].toFixed(1)} us per dispatch (min ${hostUs[0].toFixed(1)}, max ${hostUs[8].toFixed(1)}; target <= 40), ` +
      `GPU ${gpuUs.toFixed(1)} us per dispatch (timestamps, one pass each)\n`);
    x.dispose();
  }

  // ---- model presets: training and sampling throughput ----------------------------------------------
  const presets: {
    preset: string; trainPositionsPerSec: number; trainTextTokensPerSec: number; trainStepMs: number; ceilingFraction: number; sampleTokensPerSec: number;
    sampleBatch: number; prefillPositionsPerSec: number; decodeTokensPerSec: number; decodeStepMs: number; decodeFloorMs: number;
    decodeDispatchesPerStep: number;
  }[] = [];
  let decodeProfile: t.nn.DecodeKernelTime[] = [];
  if (!only || 'preset'.includes(only) || only.startsWith('preset')) {
    const vocabSize = t.data.defaultTokenizer().size;
    // the gpu preset is sized for a lent GPU: on a CPU adapter one short step is all it gets here
    const cpuAdapter = dev.adapter.isFallbackAdapter;
    for (const name of quick ? ['cpu'] : ['cpu', 'gpu']) {
      const small = cpuAdapter && name === 'gpu';
      // sampling as RL rollouts use it: one image + 128 prompt tokens, 64 new tokens at temperature 1, batch 64
      const r = await t.nn.benchmarkPreset({ preset: name, vocabSize, trainSteps: small ? 1 : 3, textTokens: small ? 128 : 256,
        batchSize: small ? 1 : undefined, sampleBatch: small ? 4 : 64, promptTokens: 128, sampleTokens: small ? 4 : 64,
        profileDecode: name === 'cpu' && dev.features.has('timestamp-query') });
      if (name === 'cpu') decodeProfile = r.decodeProfile;
      const decodeFloorMs = floor(r.decodeFlopsPerStep, r.decodeBytesPerStep);
      const row = { preset: name, trainPositionsPerSec: r.trainPositionsPerSec, trainTextTokensPerSec: r.trainTextTokensPerSec,
        trainStepMs: r.trainStepMedianMs, ceilingFraction: r.trainFlopsPerSec / (gflops * 1e9), sampleTokensPerSec: r.sampleTokensPerSec,
        sampleBatch: r.sampleBatch, prefillPositionsPerSec: r.prefillPositionsPerSec, decodeTokensPerSec: r.decodeTokensPerSec, decodeStepMs: r.decodeStepMs, decodeFloorMs,
        decodeDispatchesPerStep: r.decodeDispatchesPerStep };
      presets.push(row);
      console.log(`preset ${name.padEnd(4)} (${(r.parameters / 1e6).toFixed(2)}M params, batch ${r.batchSize} x ${r.positionsPerSequence} positions): ` +
        `train ${r.trainPositionsPerSec.toFixed(0)} positions/s (${r.trainTextTokensPerSec.toFixed(0)} text tokens/s, step ${r.trainStepMedianMs.toFixed(0)} ms, ` +
        `${(r.trainFlopsPerSec / 1e9).toFixed(2)} GFLOP/s = ${(row.ceilingFraction * 100).toFixed(0)}% of the measured ceiling)`);
      console.log(`  sampling, batch ${r.sampleBatch}, ${r.sampleTokens} new tokens: ${r.sampleTokensPerSec.toFixed(0)} tokens/s overall; ` +
        `prefill ${r.prefillPositionsPerSec.toFixed(0)} positions/s (${(r.prefillPositionsPerSec / r.trainPositionsPerSec).toFixed(1)}x training, target >= 3x); ` +
        `decode ${r.decodeTokensPerSec.toFixed(0)} tokens/s (target >= 3,000 at batch 64), step ${r.decodeStepMs.toFixed(1)} ms vs floor ${decodeFloorMs.toFixed(2)} ms ` +
        `(${(r.decodeFlopsPerStep / 1e6).toFixed(0)} MFLOP, ${(r.decodeBytesPerStep / 1e6).toFixed(1)} MB): ${(r.decodeStepMs / Math.max(decodeFloorMs, 1e-9)).toFixed(0)}x the floor, ${r.decodeDispatchesPerStep.toFixed(0)} dispatches per step`);
      if (r.decodeProfile.length) {
        const gpu = r.decodeProfile.reduce((a, k) => a + k.ms, 0);
        console.log(`  decode step by kernel (GPU ms per step, each dispatch in its own pass; ${gpu.toFixed(1)} ms in all):\n` +
          r.decodeProfile.slice(0, 12).map((k) => `    ${k.op.padEnd(22)} ${k.kernel.slice(0, 40).padEnd(40)} ${k.calls.toFixed(1).padStart(5)} calls ${k.ms.toFixed(2).padStart(7)} ms`).join('\n'));
      }
    }
  }

  const out = argValue('--out') ?? 'bench/results.json';
  const date = new Date().toISOString();
  writeFileSync(out, JSON.stringify({ date, device: adapter, ceilings: { computeGflops: gflops, streamingGBs: gbs }, rows, blockProfile, presets, decodeProfile, dispatchOverhead, tiles }, null, 2));
  console.log(`\nwrote ${out}`);
  const md = argValue('--md');
  if (md) {
    const lines = [
      `Measured ${date.slice(0, 10)} on **${adapter}**; ceilings: compute ${gflops.toFixed(1)} GFLOP/s, streaming ${gbs.toFixed(1)} GB/s.`,
      '',
      '| kernel | size | ours (ms) | min-max | rate | floor (ms) | % of floor | tfjs-webgpu (ms) | ratio (IQR) | target |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
      ...rows.map((r) => `| ${r.kernel} | ${r.size} | ${r.ms.toFixed(2)} | ${r.spread} | ${r.rate} | ${r.floorMs.toFixed(2)} | ${(r.ofFloor * 100).toFixed(0)}% | ${r.tfjsMs?.toFixed(2) ?? '-'} | ` +
        `${r.ratio ? `${r.ratio.toFixed(2)}x (${r.ratioIqr})` : '-'} | ${r.target}${r.busy ? ` ⚠ ${r.busy}` : ''} |`),
      '',
      '| model preset | train step (ms) | train positions/s | train text tokens/s | % of compute ceiling | sampling batch | sampling tokens/s | prefill positions/s | decode tokens/s | decode step (ms) | decode floor (ms) | dispatches per decode step |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...presets.map((p) => `| ${p.preset} | ${p.trainStepMs.toFixed(0)} | ${p.trainPositionsPerSec.toFixed(0)} | ${p.trainTextTokensPerSec.toFixed(0)} | ${(p.ceilingFraction * 100).toFixed(0)}% | ` +
        `${p.sampleBatch} | ${p.sampleTokensPerSec.toFixed(0)} | ${p.prefillPositionsPerSec.toFixed(0)} | ${p.decodeTokensPerSec.toFixed(0)} | ${p.decodeStepMs.toFixed(1)} | ${p.decodeFloorMs.toFixed(2)} | ${p.decodeDispatchesPerStep.toFixed(0)} |`),
    ];
    if (dispatchOverhead) {
      lines.push('', `Host overhead: ${dispatchOverhead.hostUs.toFixed(1)} µs of JavaScript per dispatch (median of 9 runs of 1,000 small adds; ` +
        `min ${dispatchOverhead.hostMinUs.toFixed(1)}, max ${dispatchOverhead.hostMaxUs.toFixed(1)}; target ≤ 40), GPU ${dispatchOverhead.gpuUs.toFixed(1)} µs per dispatch.`);
    }
    if (tiles.length) {
      lines.push('', 'Matmul tile sweep (`--tune`: `tuneMatmulTiles`, as `trimpi tune`; the winners are used by every figure above and below): '
        + 'median ms per matmul of the untuned (heuristic) tile and of the best candidate, interleaved in one run:', '',
        '| cases (M x K -> N, B) | shape class | untuned (ms) | tuned (ms) | tile (rb x tnc) | speed-up |', '|---|---|---:|---:|---|---:|',
        ...tiles.map((r) => `| ${t.describeTuneCases(r)} | \`${r.shapeClass.replaceAll('|', '\\|')}\` | ${r.heuristicMs.toFixed(2)} | ${r.ms.toFixed(2)} | ${t.describeTuneTile(r)} | ${(r.heuristicMs / r.ms).toFixed(2)}x |`));
    }
    if (blockProfile.length) {
      lines.push('', 'Transformer block step, GPU time per step by kernel (`t.profile` over 5 steps, timestamp queries; each dispatch in its own pass):', '',
        '| op | kernel | calls | GPU ms | share |', '|---|---|---:|---:|---:|',
        ...blockProfile.map((k) => `| ${k.op} | \`${k.kernel.replaceAll('|', '\\|')}\` | ${k.calls} | ${k.ms.toFixed(2)} | ${(k.share * 100).toFixed(0)}% |`));
    }
    if (decodeProfile.length) {
      const gpu = decodeProfile.reduce((a, k) => a + k.ms, 0);
      lines.push('', `\`cpu\` preset decode step at batch 64, GPU time per step by kernel (profiled generations of 18 and 2 tokens, differenced; each dispatch in its own pass; ${gpu.toFixed(1)} ms in all):`, '',
        '| op | kernel | calls | GPU ms | share |', '|---|---|---:|---:|---:|',
        ...decodeProfile.slice(0, 12).map((k) => `| ${k.op} | \`${k.kernel.split('|').slice(0, 3).join('|').replaceAll('|', '\\|')}\` | ${k.calls.toFixed(0)} | ${k.ms.toFixed(2)} | ${((k.ms / gpu) * 100).toFixed(0)}% |`));
    }
    // keep the hand-written analysis below the marker
    const marker = '<!-- analysis: kept by bench/run.ts -->';
    const previous = existsSync(md) ? readFileSync(md, 'utf8') : '';
    const analysis = previous.includes(marker) ? previous.slice(previous.indexOf(marker)) : marker + '\n';
    writeFileSync(md, ['# Benchmark results', '', '`npm run bench` rewrites the table; the analysis below the marker is kept.', '', ...lines, '', analysis].join('\n'));
    console.log(`wrote ${md}`);
  }
  tf.dispose();
  dev.destroy();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
