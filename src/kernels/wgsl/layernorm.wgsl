// layernorm.wgsl: fused LayerNorm forward and the backward for x, over rows of a contiguous [rows, D],
// in the streaming form, for rows too long to keep in registers. Rows that fit (D up to 2,048 on
// lavapipe, 1,024 on a GPU with 32-wide subgroups) take the row-in-registers bodies in layernorm.ts
// on rows.wgsl: the same formulas with x (and g) read once instead of three (two) times.
//
// Forward, per row (two passes over the row for an exact variance):
//   mean = sum(x)/D;  rstd = 1/sqrt(sum((x-mean)^2)/D + eps);  y = (x - mean) * rstd * w + b
//   mean and rstd are saved for the backward.
// Backward for x (xhat = (x - mean) * rstd, gw = g * w):
//   dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))
// (dw = sum over rows of g * xhat and db = sum over rows of g are column reductions done by the
// reduce kernel.) One workgroup per row. Floor: forward reads x and writes y (+ 8 B per row);
// backward reads x and g and writes dx.
//
// With a fixed subgroup size the workgroup is one subgroup and wg_sum is subgroupAdd (no barriers).
//
// params (u32 words): [0] rows, [1] D, [2] eps (f32).
{{ENABLE}}
{{PARAMS}}
{{BINDINGS}}

const WG: u32 = {{WG}}u;
{{REDUCE}}

@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  let rows = word(0u);
  let D = word(1u);
  if (row >= rows) { return; }
  let base = row * D;
  let t = lid.x;
  let invD = 1.0 / f32(D);
{{MAIN}}
}
