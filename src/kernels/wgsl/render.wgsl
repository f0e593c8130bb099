// render.wgsl: the rasterizer behind the CLEVR-like scene renderer, and the kernel that turns the
// rendered rgba8 images into an f32 image tensor.
//
// Render pipeline (entry points vs / fs), one render pass per scene, drawing into one layer of an
// rgba8unorm texture array (through a 4x MSAA target resolved into the layer) with a depth24plus
// buffer. Per vertex: position, normal (unit meshes: cube [-1,1]^3, sphere r=1, cylinder r=1 from
// y=-1..1, ground quad). Per instance: the model matrix (4 columns; uniform scale, so it also turns
// normals) and albedo.rgb (linear) with the material in albedo.w (0 rubber, 1 metal, 2 ground).
// The scene block (group 1, dynamic offset, one 256-byte block per scene):
//   view_proj  mat4   world -> clip (WebGPU depth range [0, 1])
//   eye        vec4   camera position
//   light      vec4   xyz: direction towards the key light; w: number of shadow casters (0 = none)
//   casters    10 x vec4   bounding spheres (center xyz, radius w) of the objects, for the ground's
//                          shadows: a ground point is shadowed by a sphere its light ray passes through
// Shading in linear light, written gamma-encoded (1/2.2): rubber is Lambert + ambient with a faint
// broad highlight; metal is a faint diffuse term, a tinted reflection of an environment (dark floor,
// bright sky, a soft light box around the key light), a sharp Blinn-Phong highlight of the key light and
// one of a low light right of the camera (so flat and vertical faces shine too); the ground is a light
// gray with a soft falloff away from the centre, darkened by the casters' soft shadows.
//
// Unpack kernel (entry point main, compute): images [N] packed as rgba8 rows of `row_words` u32 words
// (texture-to-buffer copies pad rows to 256 bytes) -> out f32 [N, 3, H, W] in [0, 1], written from
// element `out_offset` on (so one batch fills its slice of a bigger tensor). One invocation per pixel.
//
// params (u32 words): [0] pixels to convert (N*H*W), [1] W, [2] H, [3] row_words, [4] out_offset.

{{PARAMS}}
{{BINDINGS}}

// ---- unpack (compute) ---------------------------------------------------------------------------

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= word(0u)) { return; }
  let w = word(1u);
  let h = word(2u);
  let hw = w * h;
  let img = i / hw;
  let y = (i % hw) / w;
  let x = i % w;
  let px = packed[(img * h + y) * word(3u) + x];
  let base = word(4u) + img * 3u * hw + y * w + x;
  out[base] = f32(px & 0xffu) / 255.0;
  out[base + hw] = f32((px >> 8u) & 0xffu) / 255.0;
  out[base + 2u * hw] = f32((px >> 16u) & 0xffu) / 255.0;
}

// ---- render (vertex + fragment) -----------------------------------------------------------------

const MAX_CASTERS: u32 = 10u;

struct SceneBlock {
  view_proj: mat4x4<f32>,
  eye: vec4<f32>,
  light: vec4<f32>,
  casters: array<vec4<f32>, 10>,
}
@group(1) @binding(0) var<uniform> scene: SceneBlock;

struct VOut {
  @builtin(position) pos: vec4<f32>,
  @location(0) world: vec3<f32>,
  @location(1) normal: vec3<f32>,
  @location(2) @interpolate(flat) albedo: vec4<f32>,
}

@vertex
fn vs(@location(0) p: vec3<f32>, @location(1) n: vec3<f32>,
      @location(2) m0: vec4<f32>, @location(3) m1: vec4<f32>, @location(4) m2: vec4<f32>, @location(5) m3: vec4<f32>,
      @location(6) albedo: vec4<f32>) -> VOut {
  let model = mat4x4<f32>(m0, m1, m2, m3);
  let w = model * vec4<f32>(p, 1.0);
  var o: VOut;
  o.pos = scene.view_proj * w;
  o.world = w.xyz;
  o.normal = (model * vec4<f32>(n, 0.0)).xyz;
  o.albedo = albedo;
  return o;
}

// the environment a metal surface reflects: a dark floor below the horizon, a bright sky above
fn environment(r: vec3<f32>, l: vec3<f32>) -> vec3<f32> {
  let floor_c = vec3<f32>(0.08, 0.08, 0.08);
  let sky_c = mix(vec3<f32>(0.9), vec3<f32>(1.5), smoothstep(0.35, 0.95, r.y));
  // plus a big soft light box around the key light: bright patches and gradients on flat faces
  return mix(floor_c, sky_c, smoothstep(-0.1, 0.3, r.y)) + vec3<f32>(1.6) * pow(max(dot(r, l), 0.0), 6.0);
}

// soft shadow of the casters on a ground point
fn ground_shadow(p: vec3<f32>, l: vec3<f32>) -> f32 {
  let n = min(u32(scene.light.w), MAX_CASTERS);
  var s = 0.0;
  for (var i = 0u; i < n; i++) {
    let c = scene.casters[i];
    let v = c.xyz - p;
    let t = dot(v, l);
    if (t > 0.0) {
      let d = length(v - t * l);
      s = max(s, 1.0 - smoothstep(0.55 * c.w, 1.08 * c.w, d));
    }
  }
  return s;
}

@fragment
fn fs(v: VOut) -> @location(0) vec4<f32> {
  let l = normalize(scene.light.xyz);
  let fill_dir = normalize(vec3<f32>(-l.x, 0.7, -l.z));
  let nrm = normalize(v.normal);
  let view = normalize(scene.eye.xyz - v.world);
  let a = v.albedo.rgb;
  let kind = v.albedo.w;
  let diff = max(dot(nrm, l), 0.0);
  let fill = 0.28 * max(dot(nrm, fill_dir), 0.0);
  // hemisphere ambient: more light from above
  let amb = mix(0.16, 0.30, 0.5 + 0.5 * nrm.y);
  var c: vec3<f32>;
  if (kind > 1.5) {
    // ground
    let sh = ground_shadow(v.world, l);
    let falloff = mix(1.0, 0.72, smoothstep(3.0, 16.0, length(v.world.xz)));
    c = a * ((amb + fill) * (1.0 - 0.35 * sh) + 0.95 * diff * (1.0 - 0.85 * sh)) * falloff;
  } else {
    let h = normalize(l + view);
    let nh = max(dot(nrm, h), 0.0);
    if (kind > 0.5) {
      // metal: a tinted reflection of the environment, a sharp key highlight, and the highlight of a
      // low light 45 degrees right of the camera, so that vertical faces (cubes, cylinders) shine too
      let r = reflect(-view, nrm);
      let fres = 0.8 + 0.2 * pow(1.0 - max(dot(nrm, view), 0.0), 3.0);
      let e = normalize(scene.eye.xz);
      let rim = normalize(vec3<f32>(0.94 * (0.7071 * e.x - 0.7071 * e.y), 0.34, 0.94 * (0.7071 * e.x + 0.7071 * e.y)));
      let nr = max(dot(nrm, normalize(rim + view)), 0.0);
      c = a * (0.1 * amb + 0.15 * diff + 0.1 * fill) + a * environment(r, l) * 1.3 * fres
        + mix(a, vec3<f32>(1.0), 0.6) * (1.6 * pow(nh, 70.0) + 0.3 * pow(nh, 12.0) + 1.2 * pow(nr, 24.0));
    } else {
      // rubber: matte
      c = a * (amb + 0.95 * diff + fill) + vec3<f32>(0.035) * pow(nh, 8.0);
    }
  }
  return vec4<f32>(pow(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), vec3<f32>(1.0 / 2.2)), 1.0);
}
