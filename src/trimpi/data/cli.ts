// `trimpi data ...`: generates a dataset (export.ts) with a progress bar on stderr and prints the stats.
import { TrimpiError } from '../../gpu/errors.js';
import { DataOptions, SETTINGS, Setting, formatStats, generateDataset } from './export.js';
import { POLICY_PRUNINGS, PolicyPruning } from './clevr_policy.js';

/** The help text of `trimpi data`: its settings and options. */
export const DATA_USAGE = `usage: trimpi data --setting clevr-t|clevr-m|tool|sceneqa|random-t|random-m --seed S --out DIR [options]

Generates a seeded dataset (same seed, same bytes): JSONL records, PNG images, policies, vocab.json,
stats.json/stats.txt and contact_sheet.png. Written to DIR.tmp-<pid> and renamed to DIR when complete.

settings:
  clevr-t, clevr-m   ClevrPolicy target policies (text-only / with image crops)
  tool               ToolPolicy (GTAPolicy miniature)
  sceneqa            SceneQA (counting, existence, attribute questions)
  random-t, random-m random policies for stage 0 (never a target policy of the same seed)

options:
  --depth N          policy depth 2, 4 or 6 (default 6; clevr-* and random-* only)
  --seed S           non-negative integer (required)
  --out DIR          output directory (required; must not exist unless --force)
  --size F           scale of the paper-sized sample counts (default 1; e.g. 0.01 for a quick look)
  --policies N       number of policies (clevr default 10, random default 200)
  --train N          train samples per policy (clevr, random) or in total (tool; sceneqa: images)
  --test N           test samples, likewise
  --image-size N     image side in pixels (default 64; e.g. 96, 128)
  --objects A-B      objects per scene (default 3-6, at most 10)
  --balance MODE     uniform (each case equally often, default) or natural (random scenes)
  --pruning RULE     paper (the paper's tree rule, default; some cases unreachable) or strict
                     (never re-check an absent value or a type with one value left; all reachable)
  --batch N          scenes per GPU submission (default 64, at most 256)
  --no-shadows       no ground shadows
  --no-msaa          no 4x multisampling
  --sheet N          tiles in the contact sheet (default 24)
  --force            replace DIR if it exists
  --quiet            no progress bar`;

type Parsed = { opts: DataOptions; quiet: boolean } | { help: true };

function fail(message: string): never {
  throw new TrimpiError('trimpi data', message);
}

function intArg(name: string, v: string | undefined): number {
  if (v === undefined || !/^-?\d+$/.test(v)) fail(`${name} expects an integer, got ${v === undefined ? 'nothing' : `'${v}'`}`);
  return Number(v);
}

/** Parses the arguments after `data` (a leading 'data' is skipped). */
export function parseDataArgs(argv: readonly string[]): Parsed {
  const args = argv[0] === 'data' ? argv.slice(1) : [...argv];
  const o: Partial<DataOptions> = {};
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? args[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) fail(`${flag} expects a value`);
      return v;
    };
    switch (flag) {
      case '-h':
      case '--help':
        return { help: true };
      case '--setting': {
        const v = value();
        if (!(SETTINGS as readonly string[]).includes(v)) fail(`--setting must be one of ${SETTINGS.join(', ')}, got '${v}'`);
        o.setting = v as Setting;
        break;
      }
      case '--depth': o.depth = intArg(flag, value()); break;
      case '--seed': o.seed = intArg(flag, value()); break;
      case '--out': o.out = value(); break;
      case '--size': {
        const v = value();
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) fail(`--size expects a positive number, got '${v}'`);
        o.size = n;
        break;
      }
      case '--policies': o.policies = intArg(flag, value()); break;
      case '--train': o.train = intArg(flag, value()); break;
      case '--test': o.test = intArg(flag, value()); break;
      case '--image-size': o.imageSize = intArg(flag, value()); break;
      case '--objects': {
        const v = value();
        const m = v.match(/^(\d+)(?:-(\d+))?$/);
        if (!m) fail(`--objects expects A-B (e.g. 3-6) or N, got '${v}'`);
        o.minObjects = Number(m[1]);
        o.maxObjects = Number(m[2] ?? m[1]);
        if (o.minObjects < 1 || o.maxObjects > 10 || o.minObjects > o.maxObjects) fail(`--objects needs 1 <= A <= B <= 10, got '${v}'`);
        break;
      }
      case '--balance': {
        const v = value();
        if (v !== 'uniform' && v !== 'natural') fail(`--balance must be 'uniform' or 'natural', got '${v}'`);
        o.balance = v;
        break;
      }
      case '--pruning': {
        const v = value();
        if (!(POLICY_PRUNINGS as readonly string[]).includes(v)) fail(`--pruning must be one of ${POLICY_PRUNINGS.join(', ')}, got '${v}'`);
        o.pruning = v as PolicyPruning;
        break;
      }
      case '--batch': {
        o.batch = intArg(flag, value());
        if (o.batch < 1 || o.batch > 256) fail(`--batch must be an integer in [1, 256], got ${o.batch}`);
        break;
      }
      case '--sheet': o.sheet = intArg(flag, value()); break;
      case '--no-shadows': o.shadows = false; break;
      case '--no-msaa': o.msaa = false; break;
      case '--force': o.force = true; break;
      case '--quiet': quiet = true; break;
      default:
        fail(`unknown option '${a}'`);
    }
  }
  if (!o.setting) fail('--setting is required');
  if (o.seed === undefined) fail('--seed is required');
  if (!o.out) fail('--out is required');
  // the tool and sceneqa data have no policy depth: a --depth there would be silently ignored
  if (o.depth !== undefined && (o.setting === 'tool' || o.setting === 'sceneqa')) fail(`--depth applies to clevr-t, clevr-m, random-t and random-m only, not ${o.setting}`);
  if (o.pruning !== undefined && (o.setting === 'tool' || o.setting === 'sceneqa')) fail(`--pruning applies to clevr-t, clevr-m, random-t and random-m only, not ${o.setting}`);
  return { opts: o as DataOptions, quiet };
}

/** A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise. `unit` names what is counted. */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr, unit = 'images'): (done: number, total: number, extra?: string) => void {
  const start = performance.now();
  let lastTenth = -1;
  let lastDraw = 0;
  return (done, total, extra) => {
    const now = performance.now();
    const frac = total > 0 ? done / total : 1;
    const secs = (now - start) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = rate > 0 ? (total - done) / rate : 0;
    const short = unit === 'images' ? 'img' : unit;
    const etaText = done > 0 ? `${eta.toFixed(0)} s` : '?';
    const text = `${label} ${Math.floor(frac * 100)}% ${done}/${total} ${unit}, ${rate.toFixed(rate < 10 ? 2 : 1)} ${short}/s, ETA ${etaText}${extra ? `, ${extra}` : ''}`;
    if (stream.isTTY) {
      if (done < total && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 30;
      const filled = Math.round(frac * width);
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K${done >= total ? '\n' : ''}`);
    } else {
      const tenth = Math.floor(frac * 10);
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      stream.write(`${text}\n`);
    }
  };
}

/** Runs `trimpi data ...`; returns the exit code (0 done, 2 bad options, 1 failure). */
export async function runDataCommand(argv: string[]): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseDataArgs(argv);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${DATA_USAGE}`);
    return 2;
  }
  if ('help' in parsed) {
    console.log(DATA_USAGE);
    return 0;
  }
  const { opts, quiet } = parsed;
  try {
    const summary = await generateDataset({ ...opts, onProgress: quiet ? undefined : progressBar(`trimpi data ${opts.setting}`) });
    const tm = summary.timing;
    console.log(formatStats(summary.stats));
    console.log(`${tm.images} images in ${tm.seconds} s (${tm.imagesPerSecond} images/s, generation + rendering + writing)`);
    console.log(`wrote ${summary.out}`);
    return 0;
  } catch (e) {
    const err = e as Error;
    console.error(err instanceof TrimpiError ? err.message : `trimpi data: ${err.stack ?? err.message}`);
    return err instanceof TrimpiError && err.op === 'trimpi data' ? 2 : 1;
  }
}
