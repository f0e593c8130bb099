// scatter.wgsl: deterministic segment sum by key, the scatter-add behind the backward of gather,
// indexSelect and embedding:
//
//   out[k] = sum of values[i] over i with keys[i] == k, added in increasing i order     k in [0, K)
//
// keys: contiguous i32 [M] (any value outside [0, K), e.g. 0xffffffff, is skipped); values: f32 view
// of M elements read in row-major order (strided/broadcast allowed); out: contiguous f32 [K], fully
// overwritten (0 where no key lands). No float atomics, so the result is bit-identical run to run:
// a counting sort groups the element ids by key, then one invocation per key sorts its bucket by i
// and adds the values sequentially.
//
// The file holds one kernel per stage; the launcher compiles the shared prelude (everything before
// the first `//@stage` line) plus one stage section. Temporaries: offs[K] (u32) and list[M] (u32).
//   zero   offs[k] = 0                                  (also clears out when M == 0)
//   count  atomicAdd(offs[keys[i]], 1)                  -> offs = bucket sizes
//   scan   offs = exclusive prefix sum of offs          (one workgroup walking 1024-element chunks;
//                                                        scan_sg on adapters with a fixed subgroup size)
//   place  list[atomicAdd(offs[keys[i]], 1)] = i        -> bucket k is [offs[k-1], offs[k]), offs[-1] = 0
//   sum    sort bucket k by i, out[k] = sequential sum of values[list[j]]
// The ids inside a bucket arrive nearly in order, so the sort is an insertion sort with a move budget
// of 8n + 64 that falls back to an in-place heapsort: O(n) typically, O(n log n) worst case (one
// bucket holding every element is serial in one invocation, the kernel's worst case).
//
// Cost floor: keys read twice (8M bytes), values read once (4M), out written (4K); the temporaries
// add 2M atomics and 4M + 4M list bytes written/read, and 3 x 4K bytes on offs (zero, scan, sum):
// about 20M + 20K bytes in all, O(M + K) work outside the bucket sorts. The scan is a single
// workgroup, latency-bound for very large K (K / 1024 serial chunks, 16 barriers each; scan_sg:
// K / (4·SG) serial rounds, no barrier).
//
// params (u32 words), per stage:
//   zero   [0] n, [1] offset of the first word to clear
//   count  [0] M, [1] K, [2] keys offset
//   scan   [0] K            (scan_sg too)
//   place  [0] M, [1] K, [2] keys offset
//   sum    [0] K, [1] out offset, [2] values offset, [3] unused,
//          [4..4+VRANK) values shape, [4+VRANK..4+2*VRANK) values strides

{{ENABLE}}
{{PARAMS}}

fn linear_id(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 256u; }

//@stage zero
@group(0) @binding(1) var<storage, read_write> buf: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= word(0u)) { return; }
  buf[word(1u) + i] = 0u;
}

//@stage count
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> offs: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= word(0u)) { return; }
  let key = keys[word(2u) + i];
  if (key < word(1u)) { atomicAdd(&offs[key], 1u); }
}

//@stage scan
@group(0) @binding(1) var<storage, read_write> offs: array<u32>;

var<workgroup> sh: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  let n = word(0u);
  let chunks = (n + 1023u) / 1024u;
  var carry = 0u;
  for (var c = 0u; c < chunks; c++) {
    let base = c * 1024u + t * 4u;
    var v = vec4<u32>(0u);
    for (var q = 0u; q < 4u; q++) {
      if (base + q < n) { v[q] = offs[base + q]; }
    }
    let s = v.x + v.y + v.z + v.w;
    sh[t] = s;
    workgroupBarrier();
    // Hillis-Steele inclusive scan of the 256 per-thread sums
    for (var off = 1u; off < 256u; off <<= 1u) {
      var add = 0u;
      if (t >= off) { add = sh[t - off]; }
      workgroupBarrier();
      sh[t] += add;
      workgroupBarrier();
    }
    var run = carry + sh[t] - s;
    for (var q = 0u; q < 4u; q++) {
      if (base + q < n) { offs[base + q] = run; }
      run += v[q];
    }
    carry += sh[255];
    workgroupBarrier();
  }
}

//@stage scan_sg
@group(0) @binding(1) var<storage, read_write> offs: array<u32>;

// One subgroup of SG lanes (a CPU adapter's SIMD width), no workgroup barrier (on lavapipe each one
// is a coroutine switch of every 8-lane batch: the 256-lane scan costs ~20 ms at K = 152k). A round
// takes 4·SG consecutive words, 4 per lane; subgroupExclusiveAdd gives each lane its start.
@compute @workgroup_size({{SG}})
fn main(@builtin(subgroup_invocation_id) lane: u32) {
  let n = word(0u);
  var carry = 0u;
  for (var base = 0u; base < n; base += {{SG}}u * 4u) {
    let i = base + lane * 4u;
    var v = vec4<u32>(0u);
    for (var q = 0u; q < 4u; q++) {
      if (i + q < n) { v[q] = offs[i + q]; }
    }
    let s = v.x + v.y + v.z + v.w;
    var run = carry + subgroupExclusiveAdd(s);
    for (var q = 0u; q < 4u; q++) {
      if (i + q < n) { offs[i + q] = run; }
      run += v[q];
    }
    carry += subgroupAdd(s);
  }
}

//@stage place
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> offs: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> list: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= word(0u)) { return; }
  let key = keys[word(2u) + i];
  if (key < word(1u)) {
    let slot = atomicAdd(&offs[key], 1u);
    list[slot] = i;
  }
}

//@stage sum
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> offs: array<u32>;
@group(0) @binding(3) var<storage, read_write> list: array<u32>;
@group(0) @binding(4) var<storage, read> values: array<f32>;

const VRANK: u32 = {{VRANK}}u;
const VCONTIG: bool = {{VCONTIG}};

fn value_at(i: u32) -> f32 {
  if (VCONTIG) { return values[word(2u) + i]; }
  var rem = i;
  var o = word(2u);
  for (var k = 0u; k < VRANK; k++) {
    let d = VRANK - 1u - k;
    let sz = word(4u + d);
    o += (rem % sz) * word(4u + VRANK + d);
    rem = rem / sz;
  }
  return values[o];
}

// Max-heap sift-down of list[s + root] within the first n entries of list[s..].
fn sift(s: u32, root0: u32, n: u32) {
  var root = root0;
  let v = list[s + root];
  loop {
    var c = 2u * root + 1u;
    if (c >= n) { break; }
    if (c + 1u < n && list[s + c + 1u] > list[s + c]) { c += 1u; }
    let cv = list[s + c];
    if (cv <= v) { break; }
    list[s + root] = cv;
    root = c;
  }
  list[s + root] = v;
}

// Sorts list[s..e) ascending: insertion sort while it stays cheap, heapsort otherwise. The insertion
// sort always leaves a permutation behind, so the heapsort can take over at any point.
fn sort_bucket(s: u32, e: u32) {
  let n = e - s;
  var budget = 8u * n + 64u;
  var cheap = true;
  for (var a = s + 1u; a < e && cheap; a++) {
    let v = list[a];
    var b = a;
    while (b > s && list[b - 1u] > v) {
      if (budget == 0u) { cheap = false; break; }
      budget -= 1u;
      list[b] = list[b - 1u];
      b -= 1u;
    }
    list[b] = v;
  }
  if (cheap) { return; }
  for (var r = n / 2u; r > 0u; r--) { sift(s, r - 1u, n); }
  for (var last = n - 1u; last > 0u; last--) {
    let top = list[s];
    list[s] = list[s + last];
    list[s + last] = top;
    sift(s, 0u, last);
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = linear_id(gid, nwg);
  if (k >= word(0u)) { return; }
  var s = 0u;
  if (k > 0u) { s = offs[k - 1u]; }
  let e = offs[k];
  sort_bucket(s, e);
  var acc = 0.0;
  for (var j = s; j < e; j++) { acc += value_at(list[j]); }
  out[word(1u) + k] = acc;
}
