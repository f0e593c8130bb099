// math.wgsl: scalar functions shared by the kernel families that compute activations (WGSL has no
// includes: launchers paste this file into their templates' MATH placeholder).

const PI: f32 = 3.14159265358979;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

// NaN built at run time (a constant-expression NaN is a WGSL compile error)
fn nan_f() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }

// NaN and infinity tested on the bits: WGSL compilers may assume finite floats (x != x folds to
// false, comparisons with a NaN come out either way), so IEEE semantics are spelled out here
fn is_nan_f(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn is_inf_f(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
// x != 0 as a truth value: NaN is true (Python's bool(nan)), -0 false
fn nonzero_f(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) != 0u; }
// a != b with IEEE semantics: true when either is NaN
fn ne_f(a: f32, b: f32) -> bool { return is_nan_f(a) || is_nan_f(b) || a != b; }
// max / min that propagate NaN (PyTorch's maximum, minimum, clamp, relu); WGSL's drop it
fn max_nan(a: f32, b: f32) -> f32 {
  if (is_nan_f(a)) { return a; }
  if (is_nan_f(b)) { return b; }
  return max(a, b);
}
fn min_nan(a: f32, b: f32) -> f32 {
  if (is_nan_f(a)) { return a; }
  if (is_nan_f(b)) { return b; }
  return min(a, b);
}
// sign with NaN giving 0, as PyTorch's sign ((0 < x) - (x < 0))
fn sign_f(x: f32) -> f32 { return select(sign(x), 0.0, is_nan_f(x)); }
// f32 -> i32 saturating, NaN -> 0 (WGSL leaves out-of-range conversions to the implementation)
fn f32_to_i32(x: f32) -> i32 {
  if (is_nan_f(x)) { return 0; }
  if (x >= 2147483648.0) { return 2147483647; }
  if (x < -2147483648.0) { return i32(-2147483647 - 1); }
  return i32(x);
}

fn sigmoid_f(x: f32) -> f32 {
  // split by sign so exp never overflows
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

// tanh that stays finite for large |x| (some drivers' tanh returns NaN past ~|x| > 44)
fn tanh_f(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

// erf with max abs error ~1.2e-7 (Numerical Recipes' erfc Chebyshev fit), good to f32 precision
fn erf_f(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn gelu_erf(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f(x * INV_SQRT_2)); }
fn gelu_erf_grad(x: f32) -> f32 {
  return 0.5 * (1.0 + erf_f(x * INV_SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
}
fn gelu_tanh(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh_f(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))); }
fn gelu_tanh_grad(x: f32) -> f32 {
  let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
  let t = tanh_f(u);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
}
fn silu_f(x: f32) -> f32 { return x * sigmoid_f(x); }
fn silu_grad(x: f32) -> f32 { let s = sigmoid_f(x); return s * (1.0 + x * (1.0 - s)); }

// a^b with PyTorch semantics for negative bases: defined for integral b, NaN otherwise.
// C's pow for the special values (as PyTorch): pow(x, 0) = 1 and pow(1, y) = 1 even for NaN,
// pow(-1, ±inf) = 1; a NaN operand otherwise gives NaN.
fn pow_f(a: f32, b: f32) -> f32 {
  if (b == 0.0 || a == 1.0) { return 1.0; }
  if (is_nan_f(a) || is_nan_f(b)) { return nan_f(); }
  if (b == 1.0) { return a; }
  if (b == 2.0) { return a * a; }
  if (a == -1.0 && is_inf_f(b)) { return 1.0; }
  let odd = floor(b) == b && abs(b) < 16777216.0 && (i32(b) & 1) == 1;
  if (a == 0.0) {
    // WGSL leaves pow(0, y <= 0) undefined: C's +inf for y < 0 (-inf for -0 and an odd y), else ±0
    var inf = 0x7f800000u;
    let r = select(0.0, bitcast<f32>(inf), b < 0.0);
    return select(r, -r, odd && (bitcast<u32>(a) & 0x80000000u) != 0u);
  }
  let m = pow(abs(a), b);
  if (a >= 0.0) { return m; }
  // a negative base: defined for integral b (and for a = -inf, C's limits), the sign from b's parity
  let integral = floor(b) == b;
  if (!integral && !is_inf_f(a)) { return nan_f(); }
  // (|b| >= 2^24 is an even integer, ±inf included)
  return select(m, -m, odd);
}


// log(1 + x), accurate near 0: log(1 + x) = 2 atanh(s) with s = x / (2 + x), an odd series in s
// (|s| <= 0.1716 on 1 + x in [1/sqrt 2, sqrt 2], 7 terms: below f32 rounding); log(1 + x) elsewhere
fn log1p_f(x: f32) -> f32 {
  if (x < -0.29289322 || x > 0.41421356) { return log(1.0 + x); }
  let s = x / (2.0 + x);
  let s2 = s * s;
  return 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 +
         s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0)))))));
}

// exp(x) - 1, accurate near 0: the Taylor series to x^9 for |x| < 0.5 (remainder below 3e-10
// relative), exp(x) - 1 elsewhere
fn expm1_f(x: f32) -> f32 {
  if (abs(x) >= 0.5) { return exp(x) - 1.0; }
  return x * (1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0 +
         x * (1.0 / 5040.0 + x * (1.0 / 40320.0 + x * (1.0 / 362880.0)))))))));
}

// log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))
fn softplus_f(x: f32) -> f32 { return max(x, 0.0) + log1p_f(exp(-abs(x))); }
