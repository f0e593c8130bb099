// `trimpi run` and `trimpi pretrain`: argument parsing (every flag validated before the GPU starts;
// bad input exits 2 with the usage) and the runs themselves.
import { existsSync, readFileSync } from 'node:fs';
import { TrimpiError } from '../gpu/errors.js';
import { init } from '../gpu/device.js';
import { defaultTokenizer } from './data/tokenizer.js';
import { POLICY_PRUNINGS, PolicyPruning } from './data/clevr_policy.js';
import { DEMO_METHODS, METHOD_NAMES, MethodName, RunConfig, SCALES, formatResults, runPipeline } from './run.js';
import { MIX_TASKS, STAGE0_DEFAULTS, STAGE0_OPTIONAL_KEYS, Stage0Config, trainStage0, stripItems } from './stages/stage0.js';
import { writeModelCard } from './stages/model_card.js';

export const RUN_USAGE = `usage: trimpi run --setting clevr-t|clevr-m|tool --depth 2|4|6 --methods all|demo|M1,M2,... --scale demo|small|gpu --out DIR [options]

Runs every method of the paper's table on one setting from one base checkpoint: generates (or reuses)
the data, trains each stage (checkpointed; a killed run resumes where it stopped), evaluates each
method without the policy in context (the in-context row with it) and writes DIR/<setting>/results.json.

options:
  --setting S    clevr-t, clevr-m or tool (required)
  --depth N      policy depth 2, 4 or 6 (clevr; default 2)
  --methods M    all, demo (${DEMO_METHODS.join(', ')}), or a comma list of
                 ${METHOD_NAMES.join(', ')}
  --scale S      ${Object.keys(SCALES).join(', ')} (default demo)
  --base DIR     base model checkpoint (default models/base-cpu)
  --seed S       non-negative integer (default 0)
  --pruning R    clevr: paper (the paper's tree rule, default) or strict (every case reachable)
  --out DIR      output directory (required)
  --no-suite     skip the evaluation suite after the table (override, referral, forgetting, ...):
                 the table and DIR/report.html only (npm start's demo, to stay within minutes)
  --quiet        no progress bars`;

export const PRETRAIN_USAGE = `usage: trimpi pretrain --out DIR [options]

Trains the stage-0 base model from scratch (SceneQA, scene descriptions, random policies in context;
never the target policies). Resumes from DIR/checkpoint when killed. The recipe's defaults reproduce
models/base-cpu.

options:
  --out DIR          output directory (required)
  --recipe FILE      a JSON object of Stage0Config fields over the defaults (e.g. a run's
                     stage0.json: { "steps": 1400, "targets": "text", "model": { ... } })
  --preset P         tiny, cpu or gpu (default cpu)
  --steps N          optimizer steps (default ${STAGE0_DEFAULTS.steps})
  --seed S           default 0
  --max-minutes M    stop (after saving) after M minutes; run again to resume
  --no-eval          skip the held-out evaluation at the end
  --quiet            no progress lines`;

function fail(op: string, message: string): never {
  throw new TrimpiError(op, message);
}

/** Splits --flag value / --flag=value arguments; calls `on(flag, value)` for each. */
function parseFlags(op: string, argv: readonly string[], boolFlags: readonly string[], on: (flag: string, value: () => string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') && a !== '-h') fail(op, `unexpected argument '${a}'`);
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (boolFlags.includes(flag)) {
      if (inline !== undefined) fail(op, `${flag} takes no value`);
      on(flag, () => '');
      continue;
    }
    on(flag, () => {
      const v = inline ?? argv[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) fail(op, `${flag} expects a value`);
      return v;
    });
  }
}

function nonNegInt(op: string, flag: string, v: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) fail(op, `${flag} expects a non-negative integer, got '${v}'`);
  return Number(v);
}

export function parseRunArgs(argv: readonly string[]): { config: RunConfig; quiet: boolean; suite: boolean } | { help: true } {
  const op = 'trimpi run';
  const c: Partial<RunConfig> & { methods?: MethodName[] } = { depth: 2, seed: 0, scale: 'demo', base: 'models/base-cpu' };
  let quiet = false;
  let help = false;
  let suite = true;
  parseFlags(op, argv, ['--quiet', '--no-suite', '--help', '-h'], (flag, value) => {
    switch (flag) {
      case '--help': case '-h': help = true; break;
      case '--quiet': quiet = true; break;
      case '--no-suite': suite = false; break;
      case '--setting': {
        const v = value();
        if (!['clevr-t', 'clevr-m', 'tool'].includes(v)) fail(op, `--setting must be clevr-t, clevr-m or tool, got '${v}'`);
        c.setting = v as RunConfig['setting'];
        break;
      }
      case '--depth': {
        const d = nonNegInt(op, flag, value());
        if (![2, 4, 6].includes(d)) fail(op, `--depth must be 2, 4 or 6, got ${d}`);
        c.depth = d;
        break;
      }
      case '--pruning': {
        const v = value();
        if (!(POLICY_PRUNINGS as readonly string[]).includes(v)) fail(op, `--pruning must be one of ${POLICY_PRUNINGS.join(', ')}, got '${v}'`);
        c.pruning = v as PolicyPruning;
        break;
      }
      case '--methods': {
        const v = value();
        if (v === 'all') c.methods = [...METHOD_NAMES];
        else if (v === 'demo') c.methods = [...DEMO_METHODS];
        else {
          const ms = v.split(',').map((s) => s.trim()).filter(Boolean);
          for (const m of ms) if (!(METHOD_NAMES as string[]).includes(m)) fail(op, `unknown method '${m}' in --methods (expected all, demo or a comma list of ${METHOD_NAMES.join(', ')})`);
          if (ms.length === 0) fail(op, '--methods is empty');
          c.methods = ms as MethodName[];
        }
        break;
      }
      case '--scale': {
        const v = value();
        if (!(v in SCALES)) fail(op, `--scale must be one of ${Object.keys(SCALES).join(', ')}, got '${v}'`);
        c.scale = v as RunConfig['scale'];
        break;
      }
      case '--base': c.base = value(); break;
      case '--seed': c.seed = nonNegInt(op, flag, value()); break;
      case '--out': c.out = value(); if (!c.out) fail(op, '--out is empty'); break;
      default: fail(op, `unknown option ${flag}`);
    }
  });
  if (help) return { help: true };
  if (!c.setting) fail(op, '--setting is required');
  if (!c.out) fail(op, '--out is required');
  c.methods ??= [...DEMO_METHODS];
  if (c.setting === 'tool' && argv.some((a) => a.startsWith('--depth'))) fail(op, '--depth applies to clevr-t and clevr-m only');
  if (c.setting === 'tool' && argv.some((a) => a.startsWith('--pruning'))) fail(op, '--pruning applies to clevr-t and clevr-m only');
  if (!existsSync(`${c.base}/config.json`)) fail(op, `--base ${c.base} is not a checkpoint directory (no config.json); train one with trimpi pretrain --out ${c.base}`);
  return { config: c as RunConfig, quiet, suite };
}

/** A recipe file: a JSON object whose keys are Stage0Config fields (checked against the defaults' and the optional ones). */
function readRecipe(op: string, path: string): Partial<Stage0Config> {
  if (!existsSync(path)) fail(op, `--recipe ${path}: no such file`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(op, `--recipe ${path} is not JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(op, `--recipe ${path} must hold a JSON object of stage-0 settings`);
  const known = new Set([...Object.keys(STAGE0_DEFAULTS), ...STAGE0_OPTIONAL_KEYS]);
  const unknown = Object.keys(v).filter((k) => !known.has(k));
  if (unknown.length) fail(op, `--recipe ${path}: unknown setting(s) ${unknown.join(', ')}; expected some of ${[...known].join(', ')}`);
  for (const [k, x] of Object.entries(v)) {
    const d = (STAGE0_DEFAULTS as unknown as Record<string, unknown>)[k];
    if (d !== undefined && typeof x !== typeof d) fail(op, `--recipe ${path}: ${k} must be a ${typeof d}, got ${JSON.stringify(x)}`);
  }
  // a misspelt task would silently weigh 0
  for (const k of ['mixStart', 'mixEnd'] as const) {
    const mix = (v as Record<string, unknown>)[k];
    if (mix === undefined) continue;
    for (const [task, w] of Object.entries(mix as Record<string, unknown>)) {
      if (!(MIX_TASKS as readonly string[]).includes(task)) fail(op, `--recipe ${path}: ${k}.${task} is not a stage-0 task; expected some of ${MIX_TASKS.join(', ')}`);
      if (typeof w !== 'number' || !(w >= 0)) fail(op, `--recipe ${path}: ${k}.${task} must be a weight >= 0, got ${JSON.stringify(w)}`);
    }
  }
  return v as Partial<Stage0Config>;
}

export function parsePretrainArgs(argv: readonly string[]): { config: Stage0Config; out: string; maxMinutes?: number; noEval: boolean; quiet: boolean } | { help: true } {
  const op = 'trimpi pretrain';
  const config: Stage0Config = { ...STAGE0_DEFAULTS };
  let out: string | undefined;
  let maxMinutes: number | undefined;
  let noEval = false, quiet = false, help = false;
  parseFlags(op, argv, ['--no-eval', '--quiet', '--help', '-h'], (flag, value) => {
    switch (flag) {
      case '--help': case '-h': help = true; break;
      case '--no-eval': noEval = true; break;
      case '--quiet': quiet = true; break;
      case '--out': out = value(); break;
      case '--recipe': Object.assign(config, readRecipe(op, value())); break;
      case '--preset': {
        const v = value();
        if (!['tiny', 'cpu', 'gpu'].includes(v)) fail(op, `--preset must be tiny, cpu or gpu, got '${v}'`);
        config.preset = v as Stage0Config['preset'];
        break;
      }
      case '--steps': config.steps = nonNegInt(op, flag, value()); if (config.steps < 1) fail(op, '--steps must be >= 1'); break;
      case '--seed': config.seed = nonNegInt(op, flag, value()); break;
      case '--max-minutes': {
        const v = Number(value());
        if (!(v > 0) || !Number.isFinite(v)) fail(op, `--max-minutes expects a positive number`);
        maxMinutes = v;
        break;
      }
      default: fail(op, `unknown option ${flag}`);
    }
  });
  if (help) return { help: true };
  if (!out) fail(op, '--out is required');
  return { config, out, maxMinutes, noEval, quiet };
}

/** `trimpi run …`: 0 done, 2 bad arguments, 1 failure. */
export async function runRunCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseRunArgs(argv);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${RUN_USAGE}`);
    return 2;
  }
  if ('help' in parsed) {
    console.log(RUN_USAGE);
    return 0;
  }
  await init();
  const r = await runPipeline(parsed.config, defaultTokenizer(), { progress: parsed.quiet ? null : process.stderr, suite: parsed.suite });
  console.log(formatResults(r));
  return 0;
}

/** `trimpi pretrain …`: 0 done (or stopped by --max-minutes after saving), 2 bad arguments, 1 failure. */
export async function runPretrainCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parsePretrainArgs(argv);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${PRETRAIN_USAGE}`);
    return 2;
  }
  if ('help' in parsed) {
    console.log(PRETRAIN_USAGE);
    return 0;
  }
  const { config, out, maxMinutes, noEval, quiet } = parsed;
  await init();
  const started = Date.now();
  const r = await trainStage0(out, config, {
    maxSeconds: maxMinutes ? maxMinutes * 60 : undefined, noEval,
    onProgress: quiet ? undefined : (p) => console.error(`stage 0: step ${p.step}/${p.steps} loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(2)} ${p.positionsPerSecond.toFixed(0)} positions/s ${p.elapsedSeconds.toFixed(0)} s`),
  });
  try {
    if (!r.done) {
      console.log(`stopped at step ${r.step} of ${config.steps} (checkpoint in ${out}/checkpoint); run the same command again to resume`);
      return 0;
    }
    if (r.eval) {
      console.log(JSON.stringify(stripItems(r.eval), null, 1));
      writeModelCard(out, config, r.eval, (Date.now() - started) / 1000);
    }
    return 0;
  } finally {
    r.model.dispose();
  }
}
