// Memory and execution statistics of the default device.
import { currentDevice, Device, DispatchTiming, ExecStats } from './device.js';
import type { MemoryStats } from './memory.js';

/** Bytes in use, pooled, pending, peak and buffer counts of the device's buffer pool. */
export function memoryStats(device: Device = currentDevice('memoryStats')): MemoryStats {
  return device.pool.stats();
}

/** Dispatch, submit, pipeline-cache and readback counters. */
export function execStats(device: Device = currentDevice('execStats')): ExecStats {
  return { ...device.stats };
}

/** Restarts the peak-memory counter at the current usage. */
export function resetPeak(device: Device = currentDevice('resetPeak')): void {
  device.pool.resetPeak();
}

/** GPU time of one kernel (pipeline) summed over its dispatches. */
export interface KernelTime {
  op: string;
  kernel: string;
  calls: number;
  ms: number;
}

/** What profile() measured. */
export interface ProfileReport<T> {
  /** fn's return value */
  result: T;
  /** every dispatch, in order */
  dispatches: DispatchTiming[];
  /** per (op, kernel), most GPU time first */
  kernels: KernelTime[];
  /** sum of the dispatches' GPU times */
  gpuMs: number;
}

/**
 * Runs `fn` and measures the GPU time of every dispatch it makes, with timestamp queries (the device
 * needs `timestamp-query`). Each dispatch runs in a pass of its own while profiling, so the total is
 * a little above an unprofiled run's; the shares are what to read. Awaits fn and all its GPU work.
 */
export async function profile<T>(fn: () => T | Promise<T>, device: Device = currentDevice('profile')): Promise<ProfileReport<T>> {
  device.startProfiling();
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    await device.stopProfiling(); // leave the device unprofiled
    throw e;
  }
  const dispatches = await device.stopProfiling();
  const byKey = new Map<string, KernelTime>();
  for (const d of dispatches) {
    const key = `${d.op}\u0000${d.kernel}`;
    const k = byKey.get(key) ?? { op: d.op, kernel: d.kernel, calls: 0, ms: 0 };
    k.calls++;
    k.ms += d.ms;
    byKey.set(key, k);
  }
  const kernels = [...byKey.values()].sort((a, b) => b.ms - a.ms);
  return { result, dispatches, kernels, gpuMs: dispatches.reduce((a, d) => a + d.ms, 0) };
}

/** A profile as a text table: the top `rows` kernels with their share of the GPU time. */
export function formatProfile(report: ProfileReport<unknown>, rows = 20): string {
  const lines = [`GPU time ${report.gpuMs.toFixed(2)} ms in ${report.dispatches.length} dispatches`];
  for (const k of report.kernels.slice(0, rows)) {
    const share = report.gpuMs > 0 ? (100 * k.ms) / report.gpuMs : 0;
    lines.push(`${k.ms.toFixed(3).padStart(10)} ms ${share.toFixed(1).padStart(5)}% ${String(k.calls).padStart(5)}x  ${k.op.padEnd(22)} ${k.kernel}`);
  }
  return lines.join('\n');
}
