// The device's measured ceilings, the denominators of every floor in the benchmark: peak FMA
// throughput of a register-only kernel (GFLOP/s) and streaming bandwidth of a vec4 copy (GB/s).
import type { Device } from '../src/index.js';

async function timeDispatches(dev: Device, code: string, groups: number, buffers: GPUBuffer[], reps: number): Promise<number> {
  const g = dev.gpu;
  const pipeline = g.createComputePipeline({ layout: 'auto', compute: { module: g.createShaderModule({ code }), entryPoint: 'main' } });
  const bindGroup = g.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const run = async (n: number): Promise<void> => {
    const enc = g.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    for (let i = 0; i < n; i++) pass.dispatchWorkgroups(groups);
    pass.end();
    g.queue.submit([enc.finish()]);
    await g.queue.onSubmittedWorkDone();
  };
  await run(1);
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    await run(reps);
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return best;
}

/** Peak f32 FMA rate: 8 independent accumulators per invocation, no memory traffic in the loop. */
export async function measureComputeCeiling(dev: Device): Promise<number> {
  const iters = 4096;
  const acc = 8;
  const code = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let s = f32(gid.x) * 1e-9;
  ${Array.from({ length: acc }, (_, i) => `var a${i} = s + ${i}.0;`).join(' ')}
  for (var i = 0u; i < ${iters}u; i++) { ${Array.from({ length: acc }, (_, i) => `a${i} = fma(a${i}, 0.999, 0.001);`).join(' ')} }
  o[gid.x] = ${Array.from({ length: acc }, (_, i) => `a${i}`).join(' + ')};
}`;
  const n = dev.adapter.isFallbackAdapter ? 1 << 16 : 1 << 22;
  const buf = dev.gpu.createBuffer({ size: n * 4, usage: 0x80 });
  const ms = await timeDispatches(dev, code, n / 64, [buf], 1);
  buf.destroy();
  return (2 * n * iters * acc) / ms / 1e6;
}

/**
 * Streaming bandwidth: a vec4 copy of a 64 MiB buffer (bytes read + written per second), the best
 * of 1, 4 and 16 vec4s per invocation (on CPU adapters fewer, larger workgroups copy faster).
 */
export async function measureStreamingCeiling(dev: Device): Promise<number> {
  const bytes = 64 * 1024 * 1024;
  const n4 = bytes / 16;
  const src = dev.gpu.createBuffer({ size: bytes, usage: 0x80 });
  const dst = dev.gpu.createBuffer({ size: bytes, usage: 0x80 });
  let best = Infinity;
  for (const E of [1, 4, 16]) {
    const code = `@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let first = wid.x * ${256 * E}u + lid.x;
  for (var e = 0u; e < ${E}u; e++) { let i = first + e * 256u; dst[i] = src[i]; }
}`;
    best = Math.min(best, await timeDispatches(dev, code, n4 / (256 * E), [src, dst], 2));
  }
  src.destroy();
  dst.destroy();
  return (2 * bytes) / best / 1e6;
}
