// Memory and execution statistics of the default device.
import { currentDevice, Device, ExecStats } from './device.js';
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
