// Argument checks shared by every public op: each throws a TrimpiError naming the op, the argument
// and what was expected, before any GPU work (so a bad call records nothing and allocates nothing).
import { check, describeValue } from '../gpu/errors.js';
import { DType, isDType } from '../gpu/dtype.js';
import { Tensor } from './tensor.js';

/** `x` must be a live Tensor (argument `name` of `op`). */
export function checkTensor(op: string, name: string, x: unknown): asserts x is Tensor {
  check(x instanceof Tensor, op, () => `${name} must be a Tensor, got ${describeValue(x)}`);
  x.assertAlive(op);
}

/** `x` must be a live Tensor, or null / undefined. */
export function checkOptionalTensor(op: string, name: string, x: unknown): asserts x is Tensor | null | undefined {
  if (x !== null && x !== undefined) checkTensor(op, name, x);
}

/** `x` must be a live Tensor or a number (an operand of the element-wise ops). */
export function checkOperand(op: string, name: string, x: unknown): asserts x is Tensor | number {
  if (typeof x === 'number') return;
  check(x instanceof Tensor, op, () => `${name} must be a Tensor or a number, got ${describeValue(x)}`);
  x.assertAlive(op);
}

/** `xs` must be a non-empty array of live Tensors. */
export function checkTensorList(op: string, name: string, xs: unknown): asserts xs is readonly Tensor[] {
  check(Array.isArray(xs), op, () => `${name} must be an array of tensors, got ${describeValue(xs)}`);
  check(xs.length > 0, op, () => `${name} needs at least one tensor`);
  xs.forEach((x, i) => checkTensor(op, `${name}[${i}]`, x));
}

/** `d` must be one of the engine's dtypes ('f32', 'i32'), or one of `allowed`. */
export function checkDType(op: string, name: string, d: unknown, allowed: readonly DType[] = ['f32', 'i32']): asserts d is DType {
  check(isDType(d) && allowed.includes(d), op,
    () => `${isDType(d) ? 'unsupported' : 'unknown'} ${name} ${typeof d === 'string' ? d : describeValue(d)} (expected ${allowed.map((a) => `'${a}'`).join(' or ')})`);
}

/** `v` must be a boolean (flags such as keepdim, largest, training). */
export function checkBool(op: string, name: string, v: unknown): asserts v is boolean {
  check(typeof v === 'boolean', op, () => `${name} must be true or false, got ${describeValue(v)}`);
}

/** `o` must be an options object (or undefined). */
export function checkOptions(op: string, o: unknown): void {
  check(o === undefined || (typeof o === 'object' && o !== null && !Array.isArray(o)), op, () => `options must be an object, got ${describeValue(o)}`);
}
