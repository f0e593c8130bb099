/** Element types. Both are 4 bytes; 'i32' holds indices, argmax results and integer data. */
export type DType = 'f32' | 'i32';

export const BYTES_PER_ELEMENT = 4;

/** WGSL scalar type for a dtype. */
export function wgslType(d: DType): string {
  return d;
}

/** Result dtype of a binary arithmetic op: f32 wins. */
export function promote(a: DType, b: DType): DType {
  return a === 'f32' || b === 'f32' ? 'f32' : 'i32';
}

export function isDType(x: unknown): x is DType {
  return x === 'f32' || x === 'i32';
}
