// ToolPolicy, the GTAPolicy miniature (docs/trimpi.md section 3.3 and appendix A): scene images, a
// user profile, a query from templates, the history of earlier tool calls with their returned values,
// the policy text (14 tool types, 24 numbered rules) and the next tool call as JSON in \boxed{}; and the
// scorer (0.5 tool exact match + 0.5 mean argument score). No GPU needed: images are scene graphs here.
import { check } from '../../gpu/errors.js';
import { Rng } from './rng.js';
import { ATTRIBUTE_TYPES, AttributeType, COLORS, MATERIALS, ObjectAttributes, SHAPES, SceneObject, describeObject } from './scene.js';
import { lastBoxed } from './clevr_policy.js';
import { filterPhrase } from './sceneqa.js';

/** The account types of a user profile, A to D (rules pick tool versions by them). */
export const ACCOUNT_TYPES = ['A', 'B', 'C', 'D'] as const;
/** An account type: one of ACCOUNT_TYPES. */
export type AccountType = (typeof ACCOUNT_TYPES)[number];

/** The user profile the ToolPolicy rules read: account type, credits (0..1000) and age (12..80). */
export interface Profile {
  account_type: AccountType;
  /** 0..1000 */
  credits: number;
  /** 12..80 */
  age: number;
}

/** The 14 tool types of ToolPolicy (appendix A), in the order the policy text lists them. */
export const TOOL_TYPES = [
  'Calculator', 'OCR', 'CountGivenObject', 'ImageDescription', 'GoogleSearch', 'RegionAttributeDescription', 'TextToBbox',
  'Plot', 'MathOCR', 'Solver', 'DrawBox', 'AddText', 'TextToImage', 'ImageStylization',
] as const;
/** A tool type: one of TOOL_TYPES (without a version suffix). */
export type ToolType = (typeof TOOL_TYPES)[number];

/** The value of one tool-call argument: a JSON string, number or boolean. */
export type ArgValue = string | number | boolean;
/** A tool call: the tool name with its version ("OCR_v4", or "Calculator") and its arguments by name. */
export interface ToolCall {
  name: string;
  arguments: Record<string, ArgValue>;
}

/** Versions and arguments of each tool type (appendix A). */
export const TOOLS: { readonly [K in ToolType]: { versions: number; args: readonly string[]; what: string } } = {
  Calculator: { versions: 0, args: ['expression'], what: 'calculates one Python-style expression' },
  OCR: { versions: 5, args: ['image'], what: 'recognizes the text in an image' },
  CountGivenObject: { versions: 4, args: ['image', 'text'], what: 'counts the objects in an image that match a description' },
  ImageDescription: { versions: 5, args: ['image'], what: 'describes an image' },
  GoogleSearch: { versions: 3, args: ['query', 'k'], what: 'searches the web and returns the top k results (k defaults to 10)' },
  RegionAttributeDescription: { versions: 2, args: ['image', 'bbox', 'attribute'], what: 'describes an attribute of the region of an image inside a bbox "(x1, y1, x2, y2)"' },
  TextToBbox: { versions: 0, args: ['image', 'text', 'top1'], what: 'finds the bbox of the object a text describes (top1 defaults to true)' },
  Plot: { versions: 0, args: ['command'], what: 'runs code defining solution() that returns a figure' },
  MathOCR: { versions: 0, args: ['image'], what: 'recognizes the mathematical expressions in an image' },
  Solver: { versions: 0, args: ['command'], what: 'runs code defining solution() that returns the answer as a string' },
  DrawBox: { versions: 0, args: ['image', 'bbox', 'annotation'], what: 'draws a box with an optional annotation on an image' },
  AddText: { versions: 0, args: ['image', 'text', 'position', 'color'], what: 'writes text on an image at a position "(x, y)" or a code like "mt" (color defaults to red)' },
  TextToImage: { versions: 3, args: ['keywords'], what: 'generates an image from keywords' },
  ImageStylization: { versions: 3, args: ['image', 'instruction'], what: 'changes the style of an image following an instruction' },
};

/** Argument defaults: a prediction that leaves one out is read as giving the default. */
export const ARG_DEFAULTS: Readonly<Record<string, ArgValue>> = { k: 10, top1: true, color: 'red' };

// ---- the rules ---------------------------------------------------------------------------------------

/** Which rules the policy text holds: 'default', or 'override' (the paper's new OCR rules 4-6). */
export type RuleSet = 'default' | 'override';

/** The tool types whose version a rule picks from the profile (the others have a single version). */
export const VERSIONED_TOOLS = ['ImageDescription', 'OCR', 'GoogleSearch', 'TextToImage', 'RegionAttributeDescription', 'CountGivenObject', 'ImageStylization'] as const;
/** One of VERSIONED_TOOLS. */
export type VersionedTool = (typeof VERSIONED_TOOLS)[number];

/** A bound of a numeric test: the value and whether the field may equal it. */
export interface Bound {
  value: number;
  inclusive: boolean;
}

/** A test of one profile field: the account type in a set, or credits / age within bounds. */
export type ProfileTest =
  | { field: 'account_type'; values: readonly AccountType[] }
  | { field: 'credits' | 'age'; min?: Bound; max?: Bound };

/**
 * One version rule: "TOOL: if WHEN, use TOOL_vN." or, with a split, "TOOL: if WHEN, use TOOL_vA if
 * TEST, else TOOL_vB.". The rules of one tool cover every profile exactly once.
 */
export interface VersionRule {
  tool: VersionedTool;
  when: ProfileTest;
  use: number | { test: ProfileTest; then: number; otherwise: number };
}

/**
 * A ToolPolicy rule book: the version rules in order (numbered from 1), the math rule right after the
 * last OCR rule ("if the image contains mathematical expressions, use MathOCR instead"), then the four
 * tips. The target policy is DEFAULT_RULES (or OVERRIDE_RULES, the paper's new OCR rules);
 * randomToolRules() draws others for stage 0.
 */
export interface ToolRules {
  versions: readonly VersionRule[];
}

const acct = (...values: AccountType[]): ProfileTest => ({ field: 'account_type', values });
const num = (field: 'credits' | 'age', min?: [number, boolean], max?: [number, boolean]): ProfileTest =>
  ({ field, min: min && { value: min[0], inclusive: min[1] }, max: max && { value: max[0], inclusive: max[1] } });
const split = (test: ProfileTest, then: number, otherwise: number): VersionRule['use'] => ({ test, then, otherwise });

const ocrRules = (v: [number, number, number, number, number]): VersionRule[] => [
  { tool: 'OCR', when: num('credits', undefined, [250, true]), use: v[0] },
  { tool: 'OCR', when: num('credits', [250, false], [750, true]), use: split(acct('A', 'B'), v[1], v[2]) },
  { tool: 'OCR', when: num('credits', [750, false]), use: split(num('age', undefined, [21, false]), v[3], v[4]) },
];

function appendixRules(ocr: VersionRule[]): ToolRules {
  return {
    versions: [
      { tool: 'ImageDescription', when: acct('A'), use: 5 },
      { tool: 'ImageDescription', when: acct('B', 'C'), use: split(num('credits', [500, false]), 4, 3) },
      { tool: 'ImageDescription', when: acct('D'), use: split(num('credits', [500, false]), 2, 1) },
      ...ocr,
      { tool: 'GoogleSearch', when: num('age', undefined, [21, false]), use: 1 },
      { tool: 'GoogleSearch', when: num('age', [21, true]), use: split(num('credits', undefined, [500, false]), 2, 3) },
      { tool: 'TextToImage', when: acct('A', 'B', 'C'), use: 1 },
      { tool: 'TextToImage', when: acct('D'), use: split(num('credits', [500, false]), 2, 3) },
      { tool: 'RegionAttributeDescription', when: acct('A', 'B'), use: 2 },
      { tool: 'RegionAttributeDescription', when: acct('C', 'D'), use: 1 },
      { tool: 'CountGivenObject', when: num('credits', undefined, [250, false]), use: 1 },
      { tool: 'CountGivenObject', when: num('credits', [250, true], [500, false]), use: 2 },
      { tool: 'CountGivenObject', when: num('credits', [500, true], [750, false]), use: 3 },
      { tool: 'CountGivenObject', when: num('credits', [750, true]), use: 4 },
      { tool: 'ImageStylization', when: num('age', undefined, [21, false]), use: 1 },
      { tool: 'ImageStylization', when: num('age', [21, true], [60, false]), use: 2 },
      { tool: 'ImageStylization', when: num('age', [60, true]), use: 3 },
    ],
  };
}

/** The rules of appendix A: the MPI target policy. */
export const DEFAULT_RULES: ToolRules = appendixRules(ocrRules([5, 4, 3, 2, 1]));
/** The paper's override: new OCR rules 4-6, the rest as DEFAULT_RULES. */
export const OVERRIDE_RULES: ToolRules = appendixRules(ocrRules([1, 2, 3, 4, 5]));

/** A rule book by name, or itself. */
export function toolRules(rules: RuleSet | ToolRules = 'default'): ToolRules {
  return rules === 'default' ? DEFAULT_RULES : rules === 'override' ? OVERRIDE_RULES : rules;
}

/** Whether a profile passes a test. */
export function passes(t: ProfileTest, p: Profile): boolean {
  if (t.field === 'account_type') return t.values.includes(p.account_type);
  const x = p[t.field];
  const aboveMin = !t.min || (t.min.inclusive ? x >= t.min.value : x > t.min.value);
  const belowMax = !t.max || (t.max.inclusive ? x <= t.max.value : x < t.max.value);
  return aboveMin && belowMax;
}

/** "account_type is B or C", "credits > 500", "250 < credits <= 750". */
function testText(t: ProfileTest): string {
  if (t.field === 'account_type') {
    const v = t.values;
    return `account_type is ${v.length === 1 ? v[0] : `${v.slice(0, -1).join(', ')} or ${v[v.length - 1]}`}`;
  }
  if (t.min && t.max) return `${t.min.value} ${t.min.inclusive ? '<=' : '<'} ${t.field} ${t.max.inclusive ? '<=' : '<'} ${t.max.value}`;
  if (t.min) return `${t.field} ${t.min.inclusive ? '>=' : '>'} ${t.min.value}`;
  check(t.max !== undefined, 'ToolPolicy', () => `a ${t.field} test needs a bound`);
  return `${t.field} ${t.max.inclusive ? '<=' : '<'} ${t.max.value}`;
}

function versionRuleText(v: VersionRule): string {
  const use = typeof v.use === 'number'
    ? `${v.tool}_v${v.use}`
    : `${v.tool}_v${v.use.then} if ${testText(v.use.test)}, else ${v.tool}_v${v.use.otherwise}`;
  return `${v.tool}: if ${testText(v.when)}, use ${use}.`;
}

const MATH_RULE = 'OCR: if the image contains mathematical expressions, use MathOCR instead.';
const TIPS = [
  'Tip: with several images, describe each image that has not been described yet with ImageDescription before using other tools.',
  'Tip: get a bbox with TextToBbox before using RegionAttributeDescription.',
  'Tip: use the exact image names as arguments.',
  'Tip: for GoogleSearch, use k = 1 for a closed question and k = 4 for an open question.',
];

/** The texts of every rule of a rule book, in order (rule n is element n - 1): version rules, the math rule after the last OCR rule, the tips. */
export function ruleTexts(rules: RuleSet | ToolRules = 'default'): string[] {
  const book = toolRules(rules);
  const out = book.versions.map(versionRuleText);
  out.splice(mathIndex(book), 0, MATH_RULE);
  return [...out, ...TIPS];
}

/** The math rule's place among the rule texts (0-based): right after the last OCR rule; later version rules are numbered one further. */
function mathIndex(book: ToolRules): number {
  return book.versions.map((v) => v.tool).lastIndexOf('OCR') + 1;
}

/** The numbers of a rule book's math rule and tips (1-based). */
export interface SpecialRules {
  math: number;
  describeFirst: number;
  bboxFirst: number;
  exactNames: number;
  searchK: number;
}

/** Where the math rule and the tips fall in a rule book. */
export function specialRules(rules: RuleSet | ToolRules = 'default'): SpecialRules {
  const book = toolRules(rules);
  const n = book.versions.length + 1; // version rules and the math rule; the tips follow
  return { math: mathIndex(book) + 1, describeFirst: n + 1, bboxFirst: n + 2, exactNames: n + 3, searchK: n + 4 };
}

/** Rule numbers (1-based) of the tips in the target policy. */
export const TIP_RULES = { describeFirst: 21, bboxFirst: 22, exactNames: 23, searchK: 24 } as const;

/**
 * The tool name (with its version) for a tool type and profile, and the rule that decides it
 * (null for single-version tools). `math`: the image holds mathematical expressions (OCR -> MathOCR).
 */
export function toolVersion(type: ToolType, p: Profile, opts: { math?: boolean; rules?: RuleSet | ToolRules } = {}): { name: string; rule: number | null } {
  const book = toolRules(opts.rules);
  if (type === 'OCR' && opts.math) return { name: 'MathOCR', rule: specialRules(book).math };
  if (!(VERSIONED_TOOLS as readonly string[]).includes(type)) return { name: type, rule: null };
  const i = book.versions.findIndex((v) => v.tool === type && passes(v.when, p));
  check(i >= 0, 'toolVersion', () => `no rule of the rule book covers ${type} for ${JSON.stringify(p)}`);
  const v = book.versions[i];
  const version = typeof v.use === 'number' ? v.use : passes(v.use.test, p) ? v.use.then : v.use.otherwise;
  return { name: `${type}_v${version}`, rule: i + 1 + (i >= mathIndex(book) ? 1 : 0) };
}

// ---- random rule books (stage 0 reads them in context; never the target's) -----------------------------

/** A one-sided test of a field other than `not`: "credits > 400", "age <= 35" or "account_type is A or C". */
function randomTest(r: Rng, not: ProfileTest['field']): ProfileTest {
  const field = r.pick((['account_type', 'credits', 'age'] as const).filter((f) => f !== not));
  if (field === 'account_type') {
    const k = r.int(1, 3);
    return { field, values: [...r.shuffle(ACCOUNT_TYPES).slice(0, k)].sort() };
  }
  const value = field === 'credits' ? 50 * r.int(2, 18) : r.int(16, 70);
  const bound = { value, inclusive: r.bool() };
  return r.bool() ? { field, min: bound } : { field, max: bound };
}

/** The segments of one field that a tool's rules split the profiles into: 2-3 account groups, or 2-4 credit / 2-3 age ranges. */
function randomSegments(r: Rng, field: ProfileTest['field']): ProfileTest[] {
  if (field === 'account_type') {
    const letters = r.shuffle(ACCOUNT_TYPES);
    const cuts = r.shuffle([1, 2, 3]).slice(0, r.int(1, 2)).sort();
    const groups = [0, ...cuts].map((c, i, a) => [...letters.slice(c, a[i + 1] ?? 4)].sort());
    return groups.sort((a, b) => a[0].localeCompare(b[0])).map((values) => ({ field, values }));
  }
  const grid = field === 'credits' ? Array.from({ length: 17 }, (_, i) => 100 + 50 * i) : Array.from({ length: 11 }, (_, i) => 18 + 5 * i);
  const cuts = r.shuffle(grid).slice(0, r.int(1, field === 'credits' ? 3 : 2)).sort((a, b) => a - b);
  // each threshold belongs to the segment below it or to the one above (its bound inclusive there)
  const below = cuts.map(() => r.bool());
  return [...cuts, null].map((cut, i) => ({
    field,
    min: i > 0 ? { value: cuts[i - 1], inclusive: !below[i - 1] } : undefined,
    max: cut === null ? undefined : { value: cut, inclusive: below[i] },
  }));
}

/**
 * A random rule book for stage 0: for each versioned tool, its profiles split by one field (account
 * type, credits or age) into 2-4 segments, each given a version or, one time in three, split again by
 * another field ("use OCR_v2 if age < 30, else OCR_v4"). Versions are drawn without repeats while the
 * tool has enough. Never the target's rules (DEFAULT_RULES, OVERRIDE_RULES).
 */
export function randomToolRules(r: Rng): ToolRules {
  for (;;) {
    const versions: VersionRule[] = [];
    for (const tool of VERSIONED_TOOLS) {
      const field = r.pick(['account_type', 'credits', 'age'] as const);
      const segments = randomSegments(r, field);
      let bag: number[] = [];
      const nextVersion = (): number => {
        if (bag.length === 0) bag = r.shuffle(Array.from({ length: TOOLS[tool].versions }, (_, i) => i + 1));
        return bag.pop() as number;
      };
      for (const when of segments) {
        const splits = TOOLS[tool].versions > 1 && r.bool(1 / 3);
        if (!splits) {
          versions.push({ tool, when, use: nextVersion() });
          continue;
        }
        const then = nextVersion();
        let otherwise = nextVersion();
        if (otherwise === then) otherwise = nextVersion(); // the bag was refilled: its next differs
        versions.push({ tool, when, use: { test: randomTest(r, field), then, otherwise } });
      }
    }
    const book = { versions };
    const text = ruleTexts(book).join('\n');
    if (text !== ruleTexts(DEFAULT_RULES).join('\n') && text !== ruleTexts(OVERRIDE_RULES).join('\n')) return book;
  }
}

function toolListing(type: ToolType): string {
  const t = TOOLS[type];
  const names = t.versions === 0 ? type : Array.from({ length: t.versions }, (_, i) => `${type}_v${i + 1}`).join(', ');
  return `- ${names}: ${t.what}. Arguments: ${t.args.join(', ')}.`;
}

/** The policy name of ToolPolicy, 'ToolPolicy'. */
export const TOOL_POLICY_NAME = 'ToolPolicy';

/** The policy text: tools, the 24 rules and the answer format. */
export function toolPolicyText(rules: RuleSet | ToolRules = 'default'): string {
  return [
    `--- Policy: ${TOOL_POLICY_NAME} ---`,
    'Given the images, the user profile, the query and the history of earlier tool calls, decide the next tool call.',
    '# Tools',
    ...TOOL_TYPES.map(toolListing),
    '# Rules',
    ...ruleTexts(rules).map((t, i) => `Rule ${i + 1}: ${t}`),
    '# Answer',
    'Respond with the next tool call as JSON inside \\boxed{}: {"name": "TOOL", "arguments": {"ARGUMENT": "VALUE"}}.',
    '---',
  ].join('\n');
}

// ---- samples -------------------------------------------------------------------------------------------

/** An input image: its file name ("image/image_12.png") and scene graph. */
export interface ToolImage {
  name: string;
  objects: readonly SceneObject[];
}

interface Step {
  type: ToolType;
  // (undefined members only come from TypeScript's inference over the templates' literals)
  args: { readonly [name: string]: ArgValue | undefined };
  math?: boolean;
  /** What the tool returns (shown in the history of later samples). */
  returns: string;
  /** Why this call comes now (first words of the gold chain of thought). */
  purpose: string;
}

interface Plan {
  template: string;
  query: string;
  steps: Step[];
}

/**
 * One ToolPolicy sample from toolSample: images, profile, query, earlier calls and their returns, and the
 * next call (the target) with its gold response.
 */
export interface ToolSample {
  template: string;
  images: string[];
  profile: Profile;
  query: string;
  history: { call: ToolCall; returned: string }[];
  target: ToolCall;
  /** The rule that fixed the tool version (null for single-version tools). */
  rule: number | null;
  /** Gold `<think> ... </think> \boxed{...}` and answer-only `\boxed{...}`. */
  response: string;
  answer: string;
}

/** JSON of a call, keys in a fixed order, with ", " and ": " separators. */
export function formatCall(c: ToolCall): string {
  const args = Object.entries(c.arguments).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(', ');
  return `{"name": ${JSON.stringify(c.name)}, "arguments": {${args}}}`;
}

const SEARCH_THINGS: readonly (readonly [string, string])[] = [
  ['rubber ball', 'rubber balls'], ['metal cylinder', 'metal cylinders'], ['toy cube', 'toy cubes'], ['glass marble', 'glass marbles'],
  ['paint can', 'paint cans'], ['building block', 'building blocks'], ['steel sphere', 'steel spheres'], ['dice', 'dice'],
];
const CLOSED_QUESTIONS = ['when was the first {s} made', 'who invented the {s}', 'how heavy is a typical {s}'];
const OPEN_QUESTIONS = ['what are {p} used for', 'tell me about {p}', 'how are {p} made'];
const LABELS = ['STOP', 'EXIT', 'OPEN', 'SALE', 'CAFE', 'HOTEL', 'PARK', 'BANK', 'TAXI', 'POLICE', 'MUSEUM', 'PHARMACY'];
const TEXTS = ['hello', 'welcome', 'happy birthday', 'for sale', 'thank you', 'good luck', 'my toys', 'day one'];
const POSITIONS: readonly (readonly [string, string])[] = [
  ['top left', 'lt'], ['top', 'mt'], ['top right', 'rt'], ['center', 'mm'], ['bottom left', 'lb'], ['bottom', 'mb'], ['bottom right', 'rb'],
];
const TEXT_COLORS = ['red', 'blue', 'green', 'yellow', 'white', 'black'];
const STYLES = ['a watercolor painting', 'a pencil sketch', 'an oil painting', 'a cartoon', 'a mosaic', 'pop art'];
const SURFACES = ['a wooden table', 'the beach', 'green grass', 'a snowy field', 'the moon'];

function uniqueFilter(r: Rng, objects: readonly ObjectAttributes[], o: ObjectAttributes, exclude?: AttributeType): Partial<Record<AttributeType, string>> | null {
  const others = r.shuffle(ATTRIBUTE_TYPES.filter((t) => t !== exclude));
  for (let k = 1; k <= others.length; k++) {
    const f: Partial<Record<AttributeType, string>> = {};
    for (const t of others.slice(0, k)) f[t] = o[t];
    if (objects.filter((p) => ATTRIBUTE_TYPES.every((t) => f[t] === undefined || p[t] === f[t])).length === 1) return f;
  }
  return null;
}

function boxText(b: readonly number[]): string {
  return `(${b[0]}, ${b[1]}, ${b[2]}, ${b[3]})`;
}

function describeImage(objects: readonly ObjectAttributes[]): string {
  const list = objects.map((o) => `a ${describeObject(o)}`);
  const joined = list.length === 1 ? list[0] : `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
  return `The image shows ${objects.length} objects: ${joined}.`;
}

function countOf(objects: readonly ObjectAttributes[], shapeOrFilter: Partial<Record<AttributeType, string>>): number {
  return objects.filter((p) => ATTRIBUTE_TYPES.every((t) => shapeOrFilter[t] === undefined || p[t] === shapeOrFilter[t])).length;
}

/** Deterministic arithmetic: integers and + - * only, so Calculator returns exact integers. */
function evalSimple(a: number, op: string, b: number): number {
  return op === '+' ? a + b : op === '-' ? a - b : a * b;
}

type Template = { name: string; images: 1 | 2; build: (r: Rng, imgs: readonly ToolImage[], newImage: () => string, rules: SpecialRules) => Plan | null };

function describeSteps(imgs: readonly ToolImage[], rules: SpecialRules): Step[] {
  return imgs.map((im) => ({
    type: 'ImageDescription' as const,
    args: { image: im.name },
    returns: describeImage(im.objects),
    purpose: `describe ${im.name}, which has not been described yet (Rule ${rules.describeFirst})`,
  }));
}

function countFilter(r: Rng, imgs: readonly ToolImage[]): Partial<Record<AttributeType, string>> {
  const o = r.pick(r.pick(imgs).objects);
  const t = r.pick(['color', 'shape', 'material'] as const);
  return r.bool(0.5) ? { [t]: o[t] } : { color: o.color, shape: o.shape };
}

/**
 * The query templates of toolSample (count, compare, read-search, math, draw-box, ...): each takes 1 or
 * 2 images and builds a multi-step plan of tool calls, or null when it cannot be built for the images.
 */
export const TOOL_TEMPLATES: readonly Template[] = [
  {
    name: 'count', images: 1, build: (r, [im]) => {
      const f = countFilter(r, [im]);
      const what = filterPhrase(f, true);
      return { template: 'count', query: `How many ${what} are there in ${im.name}?`, steps: [
        { type: 'CountGivenObject', args: { image: im.name, text: what }, returns: String(countOf(im.objects, f)), purpose: `count the ${what} in ${im.name}` },
      ] };
    },
  },
  {
    name: 'count-total', images: 2, build: (r, imgs, _newImage, rules) => {
      const f = countFilter(r, imgs);
      const what = filterPhrase(f, true);
      const [c1, c2] = imgs.map((im) => countOf(im.objects, f));
      return { template: 'count-total', query: `How many ${what} are there in ${imgs[0].name} and ${imgs[1].name} together?`, steps: [
        ...describeSteps(imgs, rules),
        ...imgs.map((im, i) => ({ type: 'CountGivenObject' as const, args: { image: im.name, text: what }, returns: String([c1, c2][i]), purpose: `count the ${what} in ${im.name}` })),
        { type: 'Calculator', args: { expression: `${c1} + ${c2}` }, returns: String(c1 + c2), purpose: 'add the two counts' },
      ] };
    },
  },
  {
    name: 'compare', images: 2, build: (r, imgs, _newImage, rules) => {
      const f = countFilter(r, imgs);
      const what = filterPhrase(f, true);
      return { template: 'compare', query: `Which image has more ${what}, ${imgs[0].name} or ${imgs[1].name}?`, steps: [
        ...describeSteps(imgs, rules),
        ...imgs.map((im) => ({ type: 'CountGivenObject' as const, args: { image: im.name, text: what }, returns: String(countOf(im.objects, f)), purpose: `count the ${what} in ${im.name}` })),
      ] };
    },
  },
  {
    name: 'describe', images: 1, build: (_r, [im]) => ({ template: 'describe', query: `Describe ${im.name} in detail.`, steps: [
      { type: 'ImageDescription', args: { image: im.name }, returns: describeImage(im.objects), purpose: `describe ${im.name}` },
    ] }),
  },
  {
    name: 'common', images: 2, build: (_r, imgs, _newImage, rules) => ({ template: 'common', query: `What do ${imgs[0].name} and ${imgs[1].name} have in common?`, steps: describeSteps(imgs, rules) }),
  },
  {
    name: 'read-label', images: 1, build: (r, [im]) => {
      const label = r.pick(LABELS);
      return { template: 'read-label', query: `What does the label in ${im.name} say?`, steps: [
        { type: 'OCR', args: { image: im.name }, returns: label, purpose: `read the label in ${im.name}` },
      ] };
    },
  },
  {
    name: 'read-search', images: 1, build: (r, [im], _newImage, rules) => {
      const label = r.pick(LABELS);
      const q = `what does the sign ${label} mean`;
      return { template: 'read-search', query: `Read the label in ${im.name} and find out what it means.`, steps: [
        { type: 'OCR', args: { image: im.name }, returns: label, purpose: `read the label in ${im.name}` },
        { type: 'GoogleSearch', args: { query: q, k: 4 }, returns: `Found 4 results about the sign ${label}.`, purpose: `search what the sign ${label} means, an open question (k = 4 by Rule ${rules.searchK})` },
      ] };
    },
  },
  {
    name: 'search', images: 1, build: (r, _imgs, _newImage, rules) => {
      const [s, p] = r.pick(SEARCH_THINGS);
      const closed = r.bool(0.5);
      const q = r.pick(closed ? CLOSED_QUESTIONS : OPEN_QUESTIONS).replace('{s}', s).replace('{p}', p);
      const k = closed ? 1 : 4;
      return { template: 'search', query: `${q[0].toUpperCase()}${q.slice(1)}?`, steps: [
        { type: 'GoogleSearch', args: { query: q, k }, returns: `Found ${k} results about ${closed ? s : p}.`, purpose: `search the web, a ${closed ? 'closed' : 'open'} question (k = ${k} by Rule ${rules.searchK})` },
      ] };
    },
  },
  {
    name: 'math', images: 1, build: (r, [im]) => {
      const a = r.int(2, 20), b = r.int(2, 20), c = r.int(2, 9);
      const op1 = r.pick(['+', '-', '*']), op2 = r.pick(['+', '*']);
      const expr = `${a} ${op1} ${b} ${op2} ${c}`;
      // precedence: * before + and -
      const value = op2 === '*' ? evalSimple(a, op1, b * c) : evalSimple(evalSimple(a, op1, b), '+', c);
      return { template: 'math', query: `What is the value of the expression written in ${im.name}?`, steps: [
        { type: 'OCR', math: true, args: { image: im.name }, returns: expr, purpose: `read the expression in ${im.name}` },
        { type: 'Calculator', args: { expression: expr }, returns: String(value), purpose: 'calculate the expression' },
      ] };
    },
  },
  {
    name: 'solve', images: 1, build: (r, [im]) => {
      const x = r.int(1, 9), a = r.int(2, 9), b = r.int(1, 20);
      const eq = `${a} * x + ${b} = ${a * x + b}`;
      const command = `from sympy import symbols, Eq, solve\ndef solution():\n    x = symbols('x')\n    return str(solve(Eq(${a} * x + ${b}, ${a * x + b}), x))`;
      return { template: 'solve', query: `Solve the equation shown in ${im.name}.`, steps: [
        { type: 'OCR', math: true, args: { image: im.name }, returns: eq, purpose: `read the equation in ${im.name}` },
        { type: 'Solver', args: { command }, returns: `[${x}]`, purpose: 'solve the equation' },
      ] };
    },
  },
  {
    name: 'region-attribute', images: 1, build: (r, [im], _newImage, rules) => {
      const o = r.pick(im.objects);
      const asked = r.pick(['color', 'material', 'shape', 'size'] as const);
      const f = uniqueFilter(r, im.objects, o, asked);
      if (!f) return null;
      const what = filterPhrase(f, false);
      const box = boxText((o as SceneObject).box);
      return { template: 'region-attribute', query: `What ${asked} is the ${what} in ${im.name}?`, steps: [
        { type: 'TextToBbox', args: { image: im.name, text: what, top1: true }, returns: box, purpose: `find the bbox of the ${what} first (Rule ${rules.bboxFirst})` },
        { type: 'RegionAttributeDescription', args: { image: im.name, bbox: box, attribute: asked }, returns: o[asked], purpose: `describe the ${asked} inside that bbox` },
      ] };
    },
  },
  {
    name: 'draw-box', images: 1, build: (r, [im], newImage) => {
      const o = r.pick(im.objects);
      const f = uniqueFilter(r, im.objects, o);
      if (!f) return null;
      const what = filterPhrase(f, false);
      const box = boxText((o as SceneObject).box);
      return { template: 'draw-box', query: `Draw a box around the ${what} in ${im.name}.`, steps: [
        { type: 'TextToBbox', args: { image: im.name, text: what, top1: true }, returns: box, purpose: `find the bbox of the ${what}` },
        { type: 'DrawBox', args: { image: im.name, bbox: box, annotation: what }, returns: newImage(), purpose: 'draw the box' },
      ] };
    },
  },
  {
    name: 'add-text', images: 1, build: (r, [im], newImage) => {
      const text = r.pick(TEXTS);
      const [where, code] = r.pick(POSITIONS);
      const color = r.pick(TEXT_COLORS);
      return { template: 'add-text', query: `Write '${text}' at the ${where} of ${im.name} in ${color}.`, steps: [
        { type: 'AddText', args: { image: im.name, text, position: code, color }, returns: newImage(), purpose: `write the text on ${im.name}` },
      ] };
    },
  },
  {
    name: 'stylize', images: 1, build: (r, [im], newImage) => {
      const style = r.pick(STYLES);
      return { template: 'stylize', query: `Make ${im.name} look like ${style}.`, steps: [
        { type: 'ImageStylization', args: { image: im.name, instruction: `make it look like ${style}` }, returns: newImage(), purpose: `change the style of ${im.name}` },
      ] };
    },
  },
  {
    name: 'stylize-text', images: 1, build: (r, [im], newImage) => {
      const style = r.pick(STYLES);
      const text = r.pick(TEXTS);
      const [where, code] = r.pick(POSITIONS);
      const styled = newImage();
      return { template: 'stylize-text', query: `Turn ${im.name} into ${style}, then write '${text}' at the ${where} of it.`, steps: [
        { type: 'ImageStylization', args: { image: im.name, instruction: `make it look like ${style}` }, returns: styled, purpose: `change the style of ${im.name}` },
        { type: 'AddText', args: { image: styled, text, position: code, color: 'red' }, returns: newImage(), purpose: `write the text on the new image ${styled}` },
      ] };
    },
  },
  {
    name: 'generate', images: 1, build: (r, _imgs, newImage) => {
      const color = r.pick(COLORS), material = r.pick(MATERIALS), shape = r.pick(SHAPES), surface = r.pick(SURFACES);
      return { template: 'generate', query: `Generate an image of a ${color} ${material} ${shape} on ${surface}.`, steps: [
        { type: 'TextToImage', args: { keywords: `${color} ${material} ${shape}, ${surface}` }, returns: newImage(), purpose: 'generate the image' },
      ] };
    },
  },
  {
    name: 'plot', images: 1, build: (r, _imgs, newImage) => {
      const a = r.int(1, 9), b = r.int(0, 9), m = r.int(5, 20);
      const command = `import matplotlib.pyplot as plt\ndef solution():\n    x = list(range(0, ${m + 1}))\n    y = [${a} * v + ${b} for v in x]\n    figure = plt.figure()\n    plt.plot(x, y)\n    return figure`;
      return { template: 'plot', query: `Plot the line y = ${a} * x + ${b} for x from 0 to ${m}.`, steps: [
        { type: 'Plot', args: { command }, returns: newImage(), purpose: 'plot the line' },
      ] };
    },
  },
  {
    name: 'price', images: 1, build: (r, [im]) => {
      const shape = r.pick(im.objects).shape;
      const price = r.int(2, 30);
      const n = countOf(im.objects, { shape });
      return { template: 'price', query: `Each ${shape} costs ${price} dollars. How much do all the ${shape}s in ${im.name} cost?`, steps: [
        { type: 'CountGivenObject', args: { image: im.name, text: `${shape}s` }, returns: String(n), purpose: `count the ${shape}s in ${im.name}` },
        { type: 'Calculator', args: { expression: `${n} * ${price}` }, returns: String(n * price), purpose: 'multiply the count by the price' },
      ] };
    },
  },
];

/**
 * A profile; credits and ages on either side of a rule book's thresholds are drawn often so that
 * every branch is exercised (for the appendix rules: credits 0, 249-251, 499-501, 749-751, 1000 and
 * ages 12, 20, 21, 59, 60, 80).
 */
export function sampleProfile(r: Rng, rules: RuleSet | ToolRules = 'default'): Profile {
  const near = nearThresholds(toolRules(rules));
  const credits = r.bool(0.35) ? r.pick(near.credits) : r.int(0, 1000);
  const age = r.bool(0.35) ? r.pick(near.age) : r.int(12, 80);
  return { account_type: r.pick(ACCOUNT_TYPES), credits, age };
}

/** The values on both sides of every credits and age bound of a rule book, with the fields' extremes, ascending. */
function nearThresholds(book: ToolRules): { credits: number[]; age: number[] } {
  const out = { credits: new Set([0, 1000]), age: new Set([12, 80]) };
  const add = (t: ProfileTest): void => {
    if (t.field === 'account_type') return;
    // the last value inside and the first outside: an inclusive max v splits v | v + 1, an exclusive one v - 1 | v
    if (t.max) for (const x of t.max.inclusive ? [t.max.value, t.max.value + 1] : [t.max.value - 1, t.max.value]) out[t.field].add(x);
    if (t.min) for (const x of t.min.inclusive ? [t.min.value - 1, t.min.value] : [t.min.value, t.min.value + 1]) out[t.field].add(x);
  };
  for (const v of book.versions) {
    add(v.when);
    if (typeof v.use !== 'number') add(v.use.test);
  }
  const sorted = (xs: Set<number>, lo: number, hi: number): number[] => [...xs].filter((x) => x >= lo && x <= hi).sort((a, b) => a - b);
  return { credits: sorted(out.credits, 0, 1000), age: sorted(out.age, 12, 80) };
}

function profileText(p: Profile): string {
  return `account_type ${p.account_type}, credits ${p.credits}, age ${p.age}`;
}

function versionReason(name: string, rule: number | null, p: Profile): string {
  if (rule === null) return `${name} has a single version.`;
  if (name === 'MathOCR') return `The image contains a mathematical expression, so by Rule ${rule} use MathOCR.`;
  return `The user has ${profileText(p)}, so by Rule ${rule} use ${name}.`;
}

/**
 * A ToolPolicy sample: a template (uniform over those that fit the images), a profile, and a step of
 * the template's plan; earlier steps form the history. `images` are the sample's input images; images
 * that tools create get fresh names (image/image_5000.png and up).
 */
export function toolSample(r: Rng, images: readonly ToolImage[], opts: { rules?: RuleSet | ToolRules; template?: string } = {}): ToolSample {
  const book = toolRules(opts.rules);
  check(images.length >= 1 && images.length <= 2, 'toolSample', () => `expects 1 or 2 images, got ${images.length}`);
  const fits = TOOL_TEMPLATES.filter((t) => t.images === images.length && (opts.template === undefined || t.name === opts.template));
  check(fits.length > 0, 'toolSample', () => `no template '${opts.template}' for ${images.length} image(s)`);
  const used = new Set(images.map((i) => i.name));
  const newImage = (): string => {
    for (;;) {
      const name = `image/image_${r.int(5000, 9999)}.png`;
      if (!used.has(name)) {
        used.add(name);
        return name;
      }
    }
  };
  let plan: Plan | null = null;
  for (let tries = 0; !plan; tries++) {
    check(tries < 100, 'toolSample', () => 'no template could be built for these images');
    plan = r.pick(fits).build(r, images, newImage, specialRules(book));
  }
  const profile = sampleProfile(r, book);
  const stepIndex = r.int(0, plan.steps.length - 1);
  const callOf = (s: Step): { call: ToolCall; rule: number | null } => {
    const v = toolVersion(s.type, profile, { math: s.math, rules: book });
    const args = Object.fromEntries(Object.entries(s.args).filter(([, x]) => x !== undefined)) as Record<string, ArgValue>;
    return { call: { name: v.name, arguments: args }, rule: v.rule };
  };
  const history = plan.steps.slice(0, stepIndex).map((s) => ({ call: callOf(s).call, returned: s.returns }));
  const step = plan.steps[stepIndex];
  const { call: target, rule } = callOf(step);
  const answer = `\\boxed{${formatCall(target)}}`;
  const cot = `The next step is to ${step.purpose}. ${versionReason(target.name, rule, profile)}`;
  return {
    template: plan.template, images: images.map((i) => i.name), profile, query: plan.query, history, target, rule,
    response: `<think> ${cot} </think> ${answer}`, answer,
  };
}

/** The prompt without the policy; `<image>` follows each image name, in the order of `images`. */
export function toolPrompt(s: Pick<ToolSample, 'images' | 'profile' | 'query' | 'history'>): string {
  const lines = ['Images:', ...s.images.map((n) => `${n} <image>`), `User profile: ${profileText(s.profile)}`, `Query: ${s.query}`];
  if (s.history.length === 0) lines.push('History: none');
  else {
    lines.push('History:');
    s.history.forEach((h, i) => lines.push(`${i + 1}. ${formatCall(h.call)} returned: ${h.returned}`));
  }
  lines.push('What is the next tool call?');
  return lines.join('\n');
}

// ---- scoring --------------------------------------------------------------------------------------------

/**
 * How an argument is scored, each in [0, 1]: 'exact' string match, 'f1' token F1, 'eval' equal value of
 * the arithmetic expression, 'iou' box intersection over union.
 */
export type ArgMetric = 'exact' | 'f1' | 'eval' | 'iou';

/** How each argument is scored, by name (section 3.3); `command` (code) is compared by token F1 (ours). */
export const ARG_METRICS: Readonly<Record<string, ArgMetric>> = {
  image: 'exact', k: 'exact', top1: 'exact', color: 'exact', position: 'exact',
  text: 'f1', query: 'f1', attribute: 'f1', instruction: 'f1', keywords: 'f1', annotation: 'f1', command: 'f1',
  expression: 'eval', bbox: 'iou',
};

function words(s: string): string[] {
  return s.toLowerCase().match(/[a-z0-9]+/g) ?? [];
}

/** Token-level F1 between two texts (the stand-in for BERTScore). */
export function tokenF1(pred: string, gold: string): number {
  const p = words(pred);
  const g = words(gold);
  if (p.length === 0 && g.length === 0) return 1;
  if (p.length === 0 || g.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const w of g) counts.set(w, (counts.get(w) ?? 0) + 1);
  let common = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      common++;
      counts.set(w, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Python's banker's rounding (round(2.5) == 2), to `digits` decimals. */
function roundHalfEven(x: number, digits = 0): number {
  const m = 10 ** digits;
  const y = x * m;
  const r = Math.round(y);
  const v = Math.abs(y % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  return v / m;
}

function domain(ok: boolean, what: string): void {
  if (!ok) throw new Error(`math domain error: ${what}`);
}

function integral(x: number, what: string): number {
  domain(Number.isInteger(x), `${what} needs an integer`);
  return x;
}

function factorial(n: number): number {
  domain(Number.isInteger(n) && n >= 0 && n <= 170, 'factorial');
  let f = 1;
  for (let k = 2; k <= n; k++) f *= k;
  return f;
}

function gcd2(a: number, b: number): number {
  a = Math.abs(integral(a, 'gcd'));
  b = Math.abs(integral(b, 'gcd'));
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Fixed or variadic arity, and the function. */
type PyFunction = { arity: [number, number]; f: (...xs: number[]) => number };
const fn = (min: number, max: number, f: (...xs: number[]) => number): PyFunction => ({ arity: [min, max], f });
const unaryFn = (f: (x: number) => number, ok: (x: number) => boolean = () => true, name = 'argument'): PyFunction =>
  fn(1, 1, (x) => {
    domain(ok(x), name);
    return f(x);
  });

/** Python's `math` module, as far as numbers go (functions taking iterables are left out). */
const PY_MATH_FUNCTIONS: Readonly<Record<string, PyFunction>> = {
  sqrt: unaryFn(Math.sqrt, (x) => x >= 0, 'sqrt'),
  isqrt: unaryFn((x) => Math.floor(Math.sqrt(integral(x, 'isqrt'))), (x) => x >= 0, 'isqrt'),
  cbrt: unaryFn(Math.cbrt),
  pow: fn(2, 2, (x, y) => x ** y),
  exp: unaryFn(Math.exp),
  exp2: unaryFn((x) => 2 ** x),
  expm1: unaryFn(Math.expm1),
  log: fn(1, 2, (x, base) => {
    domain(x > 0 && (base === undefined || (base > 0 && base !== 1)), 'log');
    return base === undefined ? Math.log(x) : Math.log(x) / Math.log(base);
  }),
  log2: unaryFn(Math.log2, (x) => x > 0, 'log2'),
  log10: unaryFn(Math.log10, (x) => x > 0, 'log10'),
  log1p: unaryFn(Math.log1p, (x) => x > -1, 'log1p'),
  sin: unaryFn(Math.sin), cos: unaryFn(Math.cos), tan: unaryFn(Math.tan),
  asin: unaryFn(Math.asin, (x) => Math.abs(x) <= 1, 'asin'), acos: unaryFn(Math.acos, (x) => Math.abs(x) <= 1, 'acos'), atan: unaryFn(Math.atan),
  atan2: fn(2, 2, Math.atan2),
  sinh: unaryFn(Math.sinh), cosh: unaryFn(Math.cosh), tanh: unaryFn(Math.tanh),
  asinh: unaryFn(Math.asinh), acosh: unaryFn(Math.acosh, (x) => x >= 1, 'acosh'), atanh: unaryFn(Math.atanh, (x) => Math.abs(x) < 1, 'atanh'),
  floor: unaryFn(Math.floor), ceil: unaryFn(Math.ceil), trunc: unaryFn(Math.trunc),
  fabs: unaryFn(Math.abs),
  fmod: fn(2, 2, (x, y) => {
    domain(y !== 0, 'fmod');
    return x % y;
  }),
  copysign: fn(2, 2, (x, y) => (Object.is(y, -0) || y < 0 ? -Math.abs(x) : Math.abs(x))),
  factorial: unaryFn(factorial),
  comb: fn(2, 2, (n, k) => {
    domain(Number.isInteger(n) && Number.isInteger(k) && n >= 0 && k >= 0, 'comb');
    return k > n ? 0 : Math.round(factorial(n) / (factorial(k) * factorial(n - k)));
  }),
  perm: fn(1, 2, (n, k) => {
    domain(Number.isInteger(n) && n >= 0 && (k === undefined || (Number.isInteger(k) && k >= 0)), 'perm');
    return k === undefined ? factorial(n) : k > n ? 0 : Math.round(factorial(n) / factorial(n - k));
  }),
  gcd: fn(0, Infinity, (...xs) => xs.reduce(gcd2, 0)),
  lcm: fn(0, Infinity, (...xs) => xs.reduce((a, b) => (a === 0 || b === 0 ? 0 : Math.abs(a * b) / gcd2(a, b)), 1)),
  hypot: fn(0, Infinity, Math.hypot),
  degrees: unaryFn((x) => (x * 180) / Math.PI),
  radians: unaryFn((x) => (x * Math.PI) / 180),
};

const PY_MATH_CONSTANTS: Readonly<Record<string, number>> = { pi: Math.PI, e: Math.E, tau: 2 * Math.PI, inf: Infinity, nan: NaN };

/** Python builtins that need no import. */
const PY_BUILTINS: Readonly<Record<string, PyFunction>> = {
  abs: unaryFn(Math.abs),
  round: fn(1, 2, (x, n) => roundHalfEven(x, n === undefined ? 0 : integral(n, 'round'))),
  min: fn(1, Infinity, Math.min),
  max: fn(1, Infinity, Math.max),
  pow: fn(2, 3, (x, y, mod) => (mod === undefined ? x ** y : ((x ** y % mod) + mod) % mod)),
  int: unaryFn(Math.trunc),
  float: unaryFn((x) => x),
};

/**
 * Evaluates a Python-style arithmetic expression: numbers, + - * / // % **, unary +/-, parentheses,
 * the `math` module's functions and constants (`math.sqrt(64)`, `math.pi`, `math.log(8, 2)`,
 * `math.factorial(5)`, ...) and the builtins abs, round (half to even), min, max, pow, int, float.
 * Returns null when it is not one, or where Python raises (math domain errors, division by zero).
 */
export function evalExpression(src: string): number | null {
  const toks = src.match(/\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+|[A-Za-z_]\w*|\*\*|\/\/|[-+*/%(),.]|\S/g) ?? [];
  let i = 0;
  const peek = (): string | undefined => toks[i];
  const expect = (t: string): void => {
    if (toks[i++] !== t) throw new Error(`expected ${t}`);
  };
  const expr = (): number => {
    let v = term();
    while (peek() === '+' || peek() === '-') v = toks[i++] === '+' ? v + term() : v - term();
    return v;
  };
  const term = (): number => {
    let v = unary();
    for (;;) {
      const t = peek();
      if (t === '*') { i++; v *= unary(); }
      else if (t === '/') { i++; v /= unary(); }
      else if (t === '//') { i++; v = Math.floor(v / unary()); }
      else if (t === '%') { i++; const d = unary(); v = v - d * Math.floor(v / d); }
      else return v;
    }
  };
  const unary = (): number => {
    if (peek() === '-') { i++; return -unary(); }
    if (peek() === '+') { i++; return unary(); }
    return power();
  };
  const power = (): number => {
    const base = atom();
    if (peek() === '**') { i++; return base ** unary(); }
    return base;
  };
  const call = (name: string, f: PyFunction): number => {
    expect('(');
    const args: number[] = [];
    if (peek() !== ')') {
      args.push(expr());
      while (peek() === ',') {
        i++;
        args.push(expr());
      }
    }
    expect(')');
    if (args.length < f.arity[0] || args.length > f.arity[1]) throw new Error(`${name} takes ${f.arity.join('..')} arguments`);
    return f.f(...args);
  };
  const atom = (): number => {
    const t = toks[i++];
    if (t === '(') {
      const v = expr();
      expect(')');
      return v;
    }
    if (t !== undefined && /^[\d.]/.test(t)) return Number(t);
    if (t === 'math' && peek() === '.') {
      i++;
      const name = toks[i++] ?? '';
      if (Object.hasOwn(PY_MATH_FUNCTIONS, name) && peek() === '(') return call(`math.${name}`, PY_MATH_FUNCTIONS[name]);
      if (Object.hasOwn(PY_MATH_CONSTANTS, name)) return PY_MATH_CONSTANTS[name];
      throw new Error(`unknown math.${name}`);
    }
    if (t !== undefined && Object.hasOwn(PY_BUILTINS, t) && peek() === '(') return call(t, PY_BUILTINS[t]);
    throw new Error(`unexpected ${t}`);
  };
  try {
    const v = expr();
    return i === toks.length && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

function parseBox(v: ArgValue | unknown): [number, number, number, number] | null {
  const nums = (Array.isArray(v) ? v.join(',') : String(v)).match(/-?\d+(?:\.\d+)?/g);
  if (!nums || nums.length !== 4) return null;
  const [x1, y1, x2, y2] = nums.map(Number);
  return [x1, y1, x2, y2];
}

/** Intersection over union of two "(x1, y1, x2, y2)" boxes (0 if either does not parse). */
export function boxIoU(a: unknown, b: unknown): number {
  const p = parseBox(a);
  const g = parseBox(b);
  if (!p || !g) return 0;
  const iw = Math.max(0, Math.min(p[2], g[2]) - Math.max(p[0], g[0]));
  const ih = Math.max(0, Math.min(p[3], g[3]) - Math.max(p[1], g[1]));
  const inter = iw * ih;
  const area = (q: number[]): number => Math.max(0, q[2] - q[0]) * Math.max(0, q[3] - q[1]);
  const union = area(p) + area(g) - inter;
  return union > 0 ? inter / union : p.every((x, i) => x === g[i]) ? 1 : 0;
}

/** Score of one argument value against the gold one, by the argument's name. */
export function argumentScore(name: string, pred: unknown, gold: ArgValue): number {
  if (pred === undefined) pred = ARG_DEFAULTS[name];
  if (pred === undefined || pred === null) return 0;
  switch (ARG_METRICS[name] ?? 'exact') {
    case 'f1':
      return tokenF1(String(pred), String(gold));
    case 'iou':
      return boxIoU(pred, gold);
    case 'eval': {
      const p = evalExpression(String(pred));
      const g = evalExpression(String(gold));
      if (p === null || g === null) return String(pred).trim() === String(gold).trim() ? 1 : 0;
      return Math.abs(p - g) <= 1e-9 * Math.max(1, Math.abs(g)) ? 1 : 0;
    }
    default:
      return String(pred).trim() === String(gold).trim() ? 1 : 0;
  }
}

/** The result of scoreToolCall: score = 0.5·toolCorrect + 0.5·argScore in [0, 1], with the per-argument scores. */
export interface ToolScore {
  /** 0.5 * toolCorrect + 0.5 * argScore */
  score: number;
  toolCorrect: boolean;
  /** Mean over the gold call's arguments. */
  argScore: number;
  perArgument: Record<string, number>;
  predicted: ToolCall | null;
  /** 'no box', 'invalid JSON', 'no tool name', 'arguments not an object'; empty if well-formed. */
  malformed: string[];
}

/** Scores an output against the gold call; a malformed output scores 0. */
export function scoreToolCall(output: string, gold: ToolCall): ToolScore {
  const zero = (why: string): ToolScore => ({ score: 0, toolCorrect: false, argScore: 0, perArgument: {}, predicted: null, malformed: [why] });
  const boxed = lastBoxed(output);
  if (boxed === null) return zero('no box');
  let parsed: unknown;
  try {
    parsed = JSON.parse(boxed);
  } catch {
    return zero('invalid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { name?: unknown }).name !== 'string') return zero('no tool name');
  const obj = parsed as { name: string; arguments?: unknown };
  const malformed: string[] = [];
  let args: Record<string, unknown> = {};
  if (typeof obj.arguments === 'object' && obj.arguments !== null && !Array.isArray(obj.arguments)) args = obj.arguments as Record<string, unknown>;
  else malformed.push('arguments not an object');
  const toolCorrect = obj.name === gold.name;
  const perArgument: Record<string, number> = {};
  const names = Object.keys(gold.arguments);
  for (const n of names) perArgument[n] = argumentScore(n, args[n], gold.arguments[n]);
  const argScore = names.length ? names.reduce((s, n) => s + perArgument[n], 0) / names.length : 1;
  const predicted: ToolCall = { name: obj.name, arguments: Object.fromEntries(Object.entries(args).filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v))) as Record<string, ArgValue> };
  return { score: 0.5 * (toolCorrect ? 1 : 0) + 0.5 * argScore, toolCorrect, argScore, perArgument, predicted, malformed };
}

/** Fixed texts of the generator (tokenizer vocabulary). */
export function toolVocabularyTexts(): string[] {
  const out = [toolPolicyText('default'), toolPolicyText('override')];
  for (const [s, p] of SEARCH_THINGS) for (const q of [...CLOSED_QUESTIONS, ...OPEN_QUESTIONS]) {
    const t = q.replace('{s}', s).replace('{p}', p);
    out.push(t, `${t[0].toUpperCase()}${t.slice(1)}?`);
  }
  out.push(...LABELS, ...TEXTS, ...TEXT_COLORS, ...STYLES, ...SURFACES, ...POSITIONS.flat());
  out.push('Images: User profile: account_type credits age Query: History: none What is the next tool call? returned:');
  out.push('The image shows objects: a and . Found results about the sign what does mean');
  out.push('from sympy import symbols, Eq, solve def solution(): x = symbols(\'x\') return str(solve(Eq(, x))');
  out.push('import matplotlib.pyplot as plt x = list(range(0, )) y = [ * v + for v in x] figure = plt.figure() plt.plot(x, y) return figure');
  out.push(...TOOL_TEMPLATES.map((t) => t.name), 'The next step is to', 'has a single version.', 'The image contains a mathematical expression, so by Rule use MathOCR.');
  out.push('The user has , so by Rule use');
  return out;
}
