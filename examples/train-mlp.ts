// The main job for now: a tiny MLP learns a 2-D two-class spiral on the GPU, printing a falling loss.
// Run with `npm start`. Everything per step stays on the GPU; the loss is read back every 20 steps.
import * as t from '../src/index.js';

/** A linear layer's parameters, initialised like PyTorch's (uniform ±1/sqrt(fanIn)). */
function linear(fanIn: number, fanOut: number): { w: t.Tensor; b: t.Tensor } {
  const bound = 1 / Math.sqrt(fanIn);
  return {
    w: t.rand([fanIn, fanOut], { low: -bound, high: bound, requiresGrad: true }),
    b: t.rand([fanOut], { low: -bound, high: bound, requiresGrad: true }),
  };
}

function spiral(n: number, seed: number): { x: number[]; y: number[] } {
  let s = seed >>> 0;
  const rnd = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    const r = 0.2 + 0.8 * rnd();
    const th = 2.6 * Math.PI * r + cls * Math.PI + 0.25 * (rnd() - 0.5);
    x.push(r * Math.cos(th), r * Math.sin(th));
    y.push(cls);
  }
  return { x, y };
}

async function main(): Promise<void> {
  const dev = await t.init();
  console.log(`device: ${dev.adapter.description || dev.adapter.device} (${dev.adapter.backend})`);
  t.manualSeed(0);
  const data = spiral(512, 1);
  const x = t.tensor(data.x, { shape: [512, 2] });
  const y = t.tensor(data.y, { shape: [512], dtype: 'i32' });
  const layers = [linear(2, 64), linear(64, 64), linear(64, 2)];
  const params = layers.flatMap((l) => [l.w, l.b]);
  const lr = 0.02;
  // Adam state, updated in place on the GPU
  const m = params.map((p) => t.zerosLike(p));
  const v = params.map((p) => t.zerosLike(p));
  const steps = Number(process.env.STEPS ?? 200);
  const t0 = performance.now();
  for (let step = 1; step <= steps; step++) {
    const loss = t.tidy(() => {
      let h = x;
      layers.forEach((l, i) => {
        h = h.matmul(l.w).add(l.b);
        if (i < layers.length - 1) h = h.gelu();
      });
      const loss = t.crossEntropy(h, y);
      loss.backward();
      t.noGrad(() => {
        params.forEach((p, i) => {
          const g = p.grad!;
          m[i].assign(m[i].mul(0.9).add(g.mul(0.1)));
          v[i].assign(v[i].mul(0.999).add(g.mul(g).mul(0.001)));
          const mh = m[i].div(1 - 0.9 ** step);
          const vh = v[i].div(1 - 0.999 ** step);
          p.assign(p.sub(mh.mul(lr).div(vh.sqrt().add(1e-8))));
          p.zeroGrad();
        });
      });
      return loss;
    });
    if (step === 1 || step % 20 === 0) {
      const acc = await t.tidy(() => {
        let h = x;
        layers.forEach((l, i) => {
          h = h.matmul(l.w).add(l.b);
          if (i < layers.length - 1) h = h.gelu();
        });
        return h.argmax(1).eq(y).mean();
      }).item();
      console.log(`step ${String(step).padStart(4)}  loss ${(await loss.item()).toFixed(4)}  train acc ${(acc * 100).toFixed(1)}%`);
    }
    loss.dispose();
  }
  const ms = performance.now() - t0;
  const mem = t.memoryStats();
  console.log(`${steps} steps in ${(ms / 1000).toFixed(1)} s (${(ms / steps).toFixed(1)} ms/step); GPU memory in use ${(mem.bytesInUse / 1024).toFixed(0)} KiB, peak ${(mem.peakBytesInUse / 1024).toFixed(0)} KiB, buffers created ${mem.buffersCreated}`);
  dev.destroy();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
