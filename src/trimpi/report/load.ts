// Reads a run directory (runs/NAME, written by `trimpi run` and `trimpi eval`) into plain data for
// the report. Every file is optional but results.json: a setting that is still running shows what
// it has.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PolicyRecord, readJsonl } from '../data/export.js';
import type { AccuracyResult } from '../eval/accuracy.js';
import type { EvalSuiteResults, RunResults } from '../eval/results.js';
import type { MpiRecord } from '../stages/mpi_data.js';
import type { RlStepMetrics } from '../stages/rl.js';

/** A supervised stage's metrics.jsonl line. */
export interface SupervisedMetric {
  step: number;
  loss: number;
  lr?: number;
  seconds?: number;
}

/** One setting of a run (runs/NAME/<setting>). */
export interface SettingView {
  /** The directory name ("clevr-t-d2", "tool"). */
  key: string;
  dir: string;
  /** run.json: the configuration of the run. */
  run: Record<string, unknown>;
  results: RunResults;
  evals: EvalSuiteResults | null;
  /** eval/<method>.json. */
  accuracy: Record<string, AccuracyResult>;
  /** stages/<stage>/metrics.jsonl, supervised and RL stages apart. */
  supervised: Record<string, SupervisedMetric[]>;
  rl: Record<string, RlStepMetrics[]>;
  /** data/test.jsonl and data/policies.jsonl. */
  test: MpiRecord[];
  policies: Map<string, PolicyRecord>;
}

/** A run directory (runs/NAME) and its settings. */
export interface RunView {
  name: string;
  dir: string;
  settings: SettingView[];
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

function loadSetting(dir: string): SettingView {
  const accuracy: Record<string, AccuracyResult> = {};
  const evalDir = join(dir, 'eval');
  if (existsSync(evalDir)) {
    for (const f of readdirSync(evalDir).filter((f) => f.endsWith('.json')).sort()) accuracy[f.slice(0, -5)] = readJson<AccuracyResult>(join(evalDir, f));
  }
  const supervised: Record<string, SupervisedMetric[]> = {};
  const rl: Record<string, RlStepMetrics[]> = {};
  const stagesDir = join(dir, 'stages');
  if (existsSync(stagesDir)) {
    for (const s of readdirSync(stagesDir).sort()) {
      const path = join(stagesDir, s, 'metrics.jsonl');
      if (!existsSync(path)) continue;
      const lines = readJsonl<SupervisedMetric | RlStepMetrics>(path);
      if (lines.length && 'reward' in lines[0]) rl[s] = lines as RlStepMetrics[];
      else supervised[s] = lines as SupervisedMetric[];
    }
  }
  const data = join(dir, 'data');
  return {
    key: basename(dir), dir,
    run: existsSync(join(dir, 'run.json')) ? readJson<Record<string, unknown>>(join(dir, 'run.json')) : {},
    results: readJson<RunResults>(join(dir, 'results.json')),
    evals: existsSync(join(dir, 'evals.json')) ? readJson<EvalSuiteResults>(join(dir, 'evals.json')) : null,
    accuracy, supervised, rl,
    test: existsSync(join(data, 'test.jsonl')) ? readJsonl<MpiRecord>(join(data, 'test.jsonl')) : [],
    policies: new Map(existsSync(join(data, 'policies.jsonl')) ? readJsonl<PolicyRecord>(join(data, 'policies.jsonl')).map((p) => [p.name, p]) : []),
  };
}

/** The settings of a run directory that have a results.json (or the directory itself when it is one). */
export function loadRun(dir: string): RunView {
  const dirs = existsSync(join(dir, 'results.json'))
    ? [dir]
    : readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'results.json'))).map((d) => join(dir, d.name)).sort();
  return { name: basename(dir), dir, settings: dirs.map(loadSetting) };
}
