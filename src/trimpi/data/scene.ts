// CLEVR-like scenes: attributes, a seeded sampler (objects on a ground plane, no overlaps, small
// rotations, every object visible), the camera and light, and the scene graph kept with each image
// (attributes and pixel boxes, projected with the renderer's own camera matrices). No GPU needed.
import { mat4 } from 'gl-matrix';
import { projectPoint, unitMesh, viewProjection } from '../../kernels/render.js';
import type { RenderCamera, RenderObject, RenderScene, Vec3 } from '../../kernels/render.js';
import { TrimpiError, check } from '../../gpu/errors.js';
import { Rng } from './rng.js';

/** The CLEVR shapes an object can have. */
export const SHAPES = ['cube', 'sphere', 'cylinder'] as const;
/** The eight CLEVR colors (sRGB values in COLOR_RGB). */
export const COLORS = ['gray', 'red', 'blue', 'green', 'brown', 'purple', 'cyan', 'yellow'] as const;
/** The CLEVR sizes: object radius 0.35 (small) or 0.7 (large) world units (SIZE_RADIUS). */
export const SIZES = ['small', 'large'] as const;
/** The CLEVR materials (a metal object is drawn with the renderer's `metal` flag). */
export const MATERIALS = ['rubber', 'metal'] as const;

/** A shape: one of SHAPES. */
export type ShapeName = (typeof SHAPES)[number];
/** A color: one of COLORS. */
export type ColorName = (typeof COLORS)[number];
/** A size: one of SIZES. */
export type SizeName = (typeof SIZES)[number];
/** A material: one of MATERIALS. */
export type MaterialName = (typeof MATERIALS)[number];

/** The four attribute types, in the order they are written ("a small red metal cube"). */
export const ATTRIBUTE_TYPES = ['size', 'color', 'material', 'shape'] as const;
/** An attribute type: 'size' | 'color' | 'material' | 'shape'. */
export type AttributeType = (typeof ATTRIBUTE_TYPES)[number];

/** The possible values of each attribute type (SIZES, COLORS, MATERIALS, SHAPES). */
export const ATTRIBUTE_VALUES: { readonly [K in AttributeType]: readonly string[] } = {
  size: SIZES,
  color: COLORS,
  material: MATERIALS,
  shape: SHAPES,
};

/** CLEVR's sRGB colors (its properties.json). */
export const COLOR_RGB: { readonly [K in ColorName]: readonly [number, number, number] } = {
  gray: [87, 87, 87],
  red: [173, 35, 35],
  blue: [42, 75, 215],
  green: [29, 105, 20],
  brown: [129, 74, 25],
  purple: [129, 38, 192],
  cyan: [41, 208, 208],
  yellow: [255, 238, 51],
};

/** Object radius per size, as in CLEVR. */
export const SIZE_RADIUS: { readonly [K in SizeName]: number } = { small: 0.35, large: 0.7 };
/** Unit-mesh scale per shape relative to the radius (cubes a bit smaller so all read as one size class). */
const SHAPE_SCALE: { readonly [K in ShapeName]: number } = { cube: 0.8, sphere: 1, cylinder: 0.85 };

/** An object's four attributes, e.g. a small red metal cube. */
export interface ObjectAttributes {
  shape: ShapeName;
  color: ColorName;
  size: SizeName;
  material: MaterialName;
}

/** An object placed in a scene: its attributes, ground position and rotation, and its pixel box and camera distance. */
export interface SceneObject extends ObjectAttributes {
  /** Ground position (world x, z); the object rests on the plane y = 0. */
  x: number;
  z: number;
  /** Rotation about the vertical axis, degrees. */
  rotation: number;
  /** Pixel box [x1, y1, x2, y2] (integers, x right, y down, inclusive-exclusive), clipped to the image. */
  box: [number, number, number, number];
  /** Distance from the camera to the object's centre (for occlusion order). */
  depth: number;
}

/** A sampled scene: image size in pixels, camera, unit direction towards the key light, and the objects. */
export interface Scene {
  width: number;
  height: number;
  camera: RenderCamera;
  lightDir: Vec3;
  objects: SceneObject[];
}

/**
 * Options of sampleScene / sceneForCase: image size in pixels (default 64x64, each side >= 16) and
 * objects per scene (default 3..6, within 1..10).
 */
export interface SceneOptions {
  width?: number;
  height?: number;
  minObjects?: number;
  maxObjects?: number;
  /** Camera and light jitter (default true). */
  jitter?: boolean;
}

/** SceneOptions with every default filled in (see resolveSceneOptions). */
export interface ResolvedSceneOptions {
  width: number;
  height: number;
  minObjects: number;
  maxObjects: number;
  jitter: boolean;
}

/**
 * Fills in the SceneOptions defaults (64x64, 3..6 objects, jitter on) and checks them: integer sides
 * >= 16, integer counts with 1 <= minObjects <= maxObjects <= 10; throws a TrimpiError otherwise.
 */
export function resolveSceneOptions(o: SceneOptions = {}): ResolvedSceneOptions {
  const r = { width: o.width ?? 64, height: o.height ?? 64, minObjects: o.minObjects ?? 3, maxObjects: o.maxObjects ?? 6, jitter: o.jitter ?? true };
  check(Number.isInteger(r.width) && Number.isInteger(r.height) && r.width >= 16 && r.height >= 16, 'scene', () => `width/height must be integers >= 16, got ${r.width}x${r.height}`);
  check(Number.isInteger(r.minObjects) && Number.isInteger(r.maxObjects) && r.minObjects >= 1 && r.maxObjects <= 10 && r.minObjects <= r.maxObjects,
    'scene', () => `objects must satisfy 1 <= minObjects <= maxObjects <= 10, got ${r.minObjects}..${r.maxObjects}`);
  return r;
}

/** Half-width of the square of the ground where objects are placed. */
export const AREA = 3;

/** The CLEVR noun phrase of an object: "small red metal cube". */
export function describeObject(o: ObjectAttributes): string {
  return `${o.size} ${o.color} ${o.material} ${o.shape}`;
}

/** Uniformly random shape, color, size and material, drawn from `r`. */
export function randomAttributes(r: Rng): ObjectAttributes {
  return { shape: r.pick(SHAPES), color: r.pick(COLORS), size: r.pick(SIZES), material: r.pick(MATERIALS) };
}

/** Linear-light albedo of a CLEVR color. */
export function linearColor(c: ColorName): Vec3 {
  const [r, g, b] = COLOR_RGB[c];
  return [(r / 255) ** 2.2, (g / 255) ** 2.2, (b / 255) ** 2.2];
}

function modelMatrix(o: ObjectAttributes & { x: number; z: number; rotation: number }): mat4 {
  const s = SIZE_RADIUS[o.size] * SHAPE_SCALE[o.shape];
  const m = mat4.create();
  mat4.translate(m, m, [o.x, s, o.z]);
  mat4.rotateY(m, m, (o.rotation * Math.PI) / 180);
  mat4.scale(m, m, [s, s, s]);
  return m;
}

/** The object as the renderer draws it. */
export function renderObject(o: ObjectAttributes & { x: number; z: number; rotation: number }): RenderObject {
  const s = SIZE_RADIUS[o.size] * SHAPE_SCALE[o.shape];
  // shadow sphere: a cube's corners reach further than its half-side
  const radius = o.shape === 'cube' ? s * 1.25 : o.shape === 'cylinder' ? s * 1.15 : s;
  return { mesh: o.shape, model: modelMatrix(o), color: linearColor(o.color), metal: o.material === 'metal', bound: { center: [o.x, s, o.z], radius } };
}

/** The scene as the renderer draws it. */
export function toRenderScene(scene: Scene): RenderScene {
  return { camera: scene.camera, lightDir: scene.lightDir, objects: scene.objects.map(renderObject) };
}

/** Pixel box of an object: its mesh vertices projected with the scene camera, clipped to the image. */
export function pixelBox(o: ObjectAttributes & { x: number; z: number; rotation: number }, camera: RenderCamera, width: number, height: number): { box: [number, number, number, number]; raw: [number, number, number, number] } {
  const vp = viewProjection(camera, width / height);
  const m = modelMatrix(o);
  const mesh = unitMesh(o.shape);
  let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
  const v = mesh.vertices;
  for (let i = 0; i < v.length; i += 6) {
    const px = m[0] * v[i] + m[4] * v[i + 1] + m[8] * v[i + 2] + m[12];
    const py = m[1] * v[i] + m[5] * v[i + 1] + m[9] * v[i + 2] + m[13];
    const pz = m[2] * v[i] + m[6] * v[i + 1] + m[10] * v[i + 2] + m[14];
    const p = projectPoint(vp, [px, py, pz], width, height);
    x1 = Math.min(x1, p.x);
    y1 = Math.min(y1, p.y);
    x2 = Math.max(x2, p.x);
    y2 = Math.max(y2, p.y);
  }
  const raw: [number, number, number, number] = [x1, y1, x2, y2];
  const clip = (a: number, hi: number): number => Math.min(Math.max(a, 0), hi);
  const box: [number, number, number, number] = [clip(Math.floor(x1), width), clip(Math.floor(y1), height), clip(Math.ceil(x2), width), clip(Math.ceil(y2), height)];
  return { box, raw };
}

/** The default camera: looking down at the placement square from about 40 degrees, with optional jitter. */
export function sceneCamera(r: Rng | null): { camera: RenderCamera; lightDir: Vec3 } {
  const j = (a: number): number => (r ? r.uniform(-a, a) : 0);
  const az = ((35 + j(8)) * Math.PI) / 180;
  const el = ((42 + j(4)) * Math.PI) / 180;
  const dist = 11.5 + j(0.4);
  const eye: Vec3 = [dist * Math.cos(el) * Math.sin(az), dist * Math.sin(el), dist * Math.cos(el) * Math.cos(az)];
  const target: Vec3 = [j(0.15), 0, j(0.15)];
  // key light from above, to the left of the camera, so shadows fall towards the viewer's right
  const laz = az - ((70 + j(15)) * Math.PI) / 180;
  const lel = ((42 + j(6)) * Math.PI) / 180;
  const lightDir: Vec3 = [Math.cos(lel) * Math.sin(laz), Math.sin(lel), Math.cos(lel) * Math.cos(laz)];
  return { camera: { eye, target, fovY: 33 }, lightDir };
}

/** Fraction of each object's box not covered by the boxes of objects nearer the camera. */
function visibleFractions(objs: { box: [number, number, number, number]; depth: number }[]): number[] {
  return objs.map((o) => {
    const [x1, y1, x2, y2] = o.box;
    let total = 0;
    let seen = 0;
    for (let y = y1; y < y2; y++) {
      for (let x = x1; x < x2; x++) {
        total++;
        const covered = objs.some((p) => p !== o && p.depth < o.depth && x >= p.box[0] && x < p.box[2] && y >= p.box[1] && y < p.box[3]);
        if (!covered) seen++;
      }
    }
    return total === 0 ? 0 : seen / total;
  });
}

const MIN_GAP = 0.2; // world units between object footprints
const MIN_VISIBLE = 0.45; // of an object's box not hidden behind nearer boxes
const MARGIN_PX = 1; // every box stays this far inside the image

/**
 * Places objects with the given attributes on the ground: no overlaps, small random rotations
 * (within +-30 degrees), every box inside the image and not mostly hidden behind nearer objects.
 * Returns null if `tries` placements all fail (the caller then draws other attributes or fewer objects).
 */
export function placeObjects(r: Rng, attrs: readonly ObjectAttributes[], camera: RenderCamera, width: number, height: number, tries = 200): SceneObject[] | null {
  for (let t = 0; t < tries; t++) {
    const placed: SceneObject[] = [];
    let ok = true;
    for (const a of attrs) {
      let done = false;
      for (let k = 0; k < 50 && !done; k++) {
        const rad = SIZE_RADIUS[a.size];
        const x = r.uniform(-AREA, AREA);
        const z = r.uniform(-AREA, AREA);
        if (placed.some((p) => Math.hypot(p.x - x, p.z - z) < rad + SIZE_RADIUS[p.size] + MIN_GAP)) continue;
        const rotation = Math.round(r.uniform(-30, 30) * 100) / 100;
        const { box, raw } = pixelBox({ ...a, x, z, rotation }, camera, width, height);
        if (raw[0] < MARGIN_PX || raw[1] < MARGIN_PX || raw[2] > width - MARGIN_PX || raw[3] > height - MARGIN_PX) continue;
        const s = SIZE_RADIUS[a.size] * SHAPE_SCALE[a.shape];
        const depth = Math.hypot(camera.eye[0] - x, camera.eye[1] - s, camera.eye[2] - z);
        placed.push({ ...a, x: round4(x), z: round4(z), rotation, box, depth: round4(depth) });
        done = true;
      }
      if (!done) {
        ok = false;
        break;
      }
    }
    if (ok && visibleFractions(placed).every((f) => f >= MIN_VISIBLE)) return placed;
  }
  return null;
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/**
 * A scene from its own random stream: `attrs` fixes the objects' attributes (e.g. built to reach a
 * policy case); otherwise 3-6 (minObjects..maxObjects) random objects.
 */
export function sampleScene(r: Rng, opts: SceneOptions = {}, attrs?: readonly ObjectAttributes[]): Scene {
  const o = resolveSceneOptions(opts);
  const { camera, lightDir } = sceneCamera(o.jitter ? r : null);
  for (let attempt = 0; attempt < 100; attempt++) {
    const list = attrs ?? Array.from({ length: r.int(o.minObjects, o.maxObjects) }, () => randomAttributes(r));
    const objects = placeObjects(r, list, camera, o.width, o.height);
    if (objects) return { width: o.width, height: o.height, camera, lightDir, objects };
  }
  throw new TrimpiError('sampleScene', `could not place ${attrs?.length ?? o.maxObjects} objects without overlap in a ${o.width}x${o.height} image; use fewer objects`);
}

/**
 * A single-object "crop" scene for -M policies: one large object at the centre, filling the frame,
 * so its color, shape or material can be shown in place of a word.
 */
export function cropScene(r: Rng, a: ObjectAttributes, width = 64, height = 64): Scene {
  const rotation = Math.round(r.uniform(-30, 30) * 100) / 100;
  const az = (35 * Math.PI) / 180;
  const el = (30 * Math.PI) / 180;
  const dist = 4.2;
  const camera: RenderCamera = { eye: [dist * Math.cos(el) * Math.sin(az), 0.6 + dist * Math.sin(el), dist * Math.cos(el) * Math.cos(az)], target: [0, 0.55, 0], fovY: 30 };
  const laz = az - (70 * Math.PI) / 180;
  const lel = (55 * Math.PI) / 180;
  const lightDir: Vec3 = [Math.cos(lel) * Math.sin(laz), Math.sin(lel), Math.cos(lel) * Math.cos(laz)];
  const obj = { ...a, size: 'large' as const, x: 0, z: 0, rotation };
  const { box } = pixelBox(obj, camera, width, height);
  const s = SIZE_RADIUS.large * SHAPE_SCALE[a.shape];
  return { width, height, camera, lightDir, objects: [{ ...obj, box, depth: round4(Math.hypot(camera.eye[0], camera.eye[1] - s, camera.eye[2])) }] };
}

/** The scene graph as stored with each image (JSON-friendly, no camera internals). */
export interface SceneGraph {
  objects: { shape: ShapeName; color: ColorName; size: SizeName; material: MaterialName; x: number; z: number; rotation: number; box: [number, number, number, number] }[];
}

/**
 * The scene graph stored with an image: per object its attributes, ground x/z, rotation (degrees) and
 * pixel box [x1, y1, x2, y2]; no camera, light or depth.
 */
export function sceneGraph(scene: Scene): SceneGraph {
  return { objects: scene.objects.map(({ shape, color, size, material, x, z, rotation, box }) => ({ shape, color, size, material, x, z, rotation, box })) };
}
