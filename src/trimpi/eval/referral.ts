// Policy referral, computed exactly (docs/referral.md): how faithfully a response's reasoning cites the
// policy. The steps a response writes ("Condition 1.2: check if … There is no … Go to Condition
// 1.2.1.") are parsed and compared with the policy: does each cited condition exist, is its quoted
// check the policy's, is the stated branch the one the policy prescribes for the stated observation,
// and does the visited path hang together from Condition 1 to the boxed case. No judge model.
import { Condition, PolicyNode, conditionText } from '../data/clevr_policy.js';
import { lastBoxed } from '../data/boxed.js';
import { TIP_RULES, TOOL_TYPES, ToolType, toolVersion } from '../data/tool_policy.js';
import type { PolicyRecord, ToolRecord } from '../data/export.js';

/** Where a step says to go next. */
export type StepTarget = { kind: 'condition'; id: string } | { kind: 'case'; case: number };

/** One cited step of a response: `Condition ID: <check> <observation> <next>`. */
export interface CitedStep {
  /** The cited condition id ("1.2"). */
  id: string;
  /** The quoted check ("check if there is any gray object."), or null when the step quotes none. */
  check: string | null;
  /** 'yes' ("There is a …" / "There are …"), 'no' ("There is no …"), or null when none is stated. */
  observation: 'yes' | 'no' | null;
  /** "Go to Condition …" / "Respond with Case …", or null. */
  next: StepTarget | null;
  /** The step's text as written. */
  text: string;
  /** Where the step is in the response: [start, end) indices. */
  start: number;
  end: number;
}

const STEP_HEAD = /Condition (\d+(?:\.\d+)*):/g;

/** Where the reasoning of a response is: inside `<think> … </think>` when there is such a block, else all of it before the box. */
function reasoningSpan(response: string): [number, number] {
  const open = response.indexOf('<think>');
  if (open >= 0) {
    const close = response.indexOf('</think>', open);
    return [open + 7, close >= 0 ? close : response.length];
  }
  const box = response.lastIndexOf('\\boxed{');
  return [0, box >= 0 ? box : response.length];
}

function reasoning(response: string): string {
  return response.slice(...reasoningSpan(response));
}

/** Splits a response's reasoning into the steps it cites, in order (see CitedStep). */
export function parseCitedSteps(response: string): CitedStep[] {
  const [from, to] = reasoningSpan(response);
  const text = response.slice(from, to);
  const heads = [...text.matchAll(STEP_HEAD)];
  return heads.map((m, k) => {
    const end = k + 1 < heads.length ? heads[k + 1].index! : text.length;
    const body = text.slice(m.index! + m[0].length, end).trim();
    const check = /^check if [^.]*\./.exec(body)?.[0] ?? null;
    const rest = check ? body.slice(check.length) : body;
    const observation = /\bThere is no\b/.test(rest) ? 'no' : /\bThere (?:is an?|are \d+)\b/.test(rest) ? 'yes' : null;
    const go = /\bGo to Condition (\d+(?:\.\d+)*)/.exec(rest);
    const respond = /\bRespond with Case (\d+)/.exec(rest);
    // the first of the two that is written is the step's next
    const next: StepTarget | null = go && (!respond || go.index < respond.index)
      ? { kind: 'condition', id: go[1] }
      : respond ? { kind: 'case', case: Number(respond[1]) } : null;
    return { id: m[1], check, observation, next, text: `${m[0]} ${body}`, start: from + m.index!, end: from + end };
  });
}

/** The condition ids a response cites, in order (ClevrPolicy), or else the rule numbers it cites ("Rule 15" → "15"). */
export function citedIds(response: string): string[] {
  const steps = parseCitedSteps(response);
  if (steps.length) return steps.map((s) => s.id);
  return [...reasoning(response).matchAll(/\bRule (\d+)\b/g)].map((m) => m[1]);
}

type DecisionNode = Extract<PolicyNode, { kind: 'node' }>;

function nodesById(tree: PolicyNode): Map<string, DecisionNode> {
  const out = new Map<string, DecisionNode>();
  const walk = (n: PolicyNode): void => {
    if (n.kind === 'leaf') return;
    out.set(n.id, n);
    walk(n.yes);
    walk(n.no);
  };
  walk(tree);
  return out;
}

function targetOf(n: PolicyNode): StepTarget {
  return n.kind === 'leaf' ? { kind: 'case', case: n.case } : { kind: 'condition', id: n.id };
}

function sameTarget(a: StepTarget | null, b: StepTarget): boolean {
  return a !== null && (a.kind === 'case' ? b.kind === 'case' && a.case === b.case : b.kind === 'condition' && a.id === b.id);
}

const norm = (s: string): string => s.trim().replace(/\s+/g, ' ');

/** What is wrong with one cited step (all false: the step cites the policy correctly). */
export interface StepVerdict {
  /** The cited condition is not in the policy. */
  unknownId: boolean;
  /** The quoted check is missing or is not the policy's check for that id. */
  wrongCheck: boolean;
  /** The stated branch is not the one the policy prescribes for the stated observation. */
  wrongBranch: boolean;
  /** The step does not follow from the previous one (or, first, does not start at Condition 1). */
  brokenPath: boolean;
}

/** A response's referral score (0–10) and its four parts (each in [0, 1]); docs/referral.md defines them. */
export interface ReferralScore {
  score: number;
  /** Cited steps. */
  steps: number;
  /** Share of cited steps whose condition exists in the policy. */
  existence: number;
  /** Share of cited steps quoting the policy's check for that id. */
  quote: number;
  /** Share of cited steps whose branch is the policy's for the stated observation. */
  branch: number;
  /** Share of consistent links: start at Condition 1, each next is the following step, the last next is the boxed case. */
  path: number;
  verdicts: StepVerdict[];
}

const ZERO: ReferralScore = { score: 0, steps: 0, existence: 0, quote: 0, branch: 0, path: 0, verdicts: [] };

/**
 * The exact policy-referral score of a ClevrPolicy response against its policy (docs/referral.md):
 * 10 × the mean of existence, quote, branch and path. A response that cites no condition scores 0.
 * What is observed in the image is not judged here (that is accuracy's business), only whether
 * the policy is cited and followed as written.
 */
export function referralScore(response: string, policy: Pick<PolicyRecord, 'tree'>): ReferralScore {
  const steps = parseCitedSteps(response);
  if (!policy.tree || steps.length === 0) return ZERO;
  const nodes = nodesById(policy.tree);
  const boxed = lastBoxed(response)?.trim().match(/^Case (\d+)$/);
  const verdicts: StepVerdict[] = steps.map((s, k) => {
    const n = nodes.get(s.id);
    const prescribed = n && s.observation ? targetOf(s.observation === 'yes' ? n.yes : n.no) : null;
    const linkedIn = k === 0 ? s.id === (policy.tree as DecisionNode).id : sameTarget(steps[k - 1].next, { kind: 'condition', id: s.id });
    return {
      unknownId: !n,
      wrongCheck: !n || s.check === null || norm(s.check) !== norm(conditionText(n.cond as Condition, false)),
      wrongBranch: !prescribed || !sameTarget(s.next, prescribed),
      brokenPath: !linkedIn,
    };
  });
  const last = steps[steps.length - 1].next;
  const closes = !!boxed && last?.kind === 'case' && last.case === Number(boxed[1]);
  const share = (f: (v: StepVerdict) => boolean): number => verdicts.filter((v) => !f(v)).length / verdicts.length;
  const existence = share((v) => v.unknownId);
  const quote = share((v) => v.wrongCheck);
  const branch = share((v) => v.wrongBranch);
  const path = (verdicts.filter((v) => !v.brokenPath).length + (closes ? 1 : 0)) / (steps.length + 1);
  return { score: (10 * (existence + quote + branch + path)) / 4, steps: steps.length, existence, quote, branch, path, verdicts };
}

/** A ToolPolicy response's referral (docs/referral.md): the version rule it cites and the tool it names. */
export interface ToolReferralScore {
  score: number;
  /** Every cited rule exists (1..24). */
  existence: number;
  /** The cited version rule is the one that decides the named tool's type for the user's profile. */
  rule: number;
  /** The named tool is the version that rule prescribes for the profile. */
  version: number;
}

/**
 * The referral score of a ToolPolicy response (0–10): 10 × the mean of existence, rule and version,
 * computed against the default rules for the record's profile. A response citing no rule scores 0.
 */
export function toolReferralScore(response: string, record: Pick<ToolRecord, 'profile'>): ToolReferralScore {
  const text = reasoning(response);
  const rules = [...text.matchAll(/\bRule (\d+)\b/g)].map((m) => Number(m[1]));
  if (rules.length === 0) return { score: 0, existence: 0, rule: 0, version: 0 };
  const existence = rules.every((r) => r >= 1 && r <= TIP_RULES.searchK) ? 1 : 0;
  const named = /\buse (\w+)/.exec(text.slice(text.lastIndexOf('Rule ')))?.[1] ?? '';
  // MathOCR is what the OCR rule 7 prescribes for an image with mathematical expressions
  const type: ToolType | undefined = named === 'MathOCR' ? 'OCR' : TOOL_TYPES.find((t) => named === t || named.startsWith(`${t}_v`));
  const cited = rules[rules.length - 1];
  const due = type ? toolVersion(type, record.profile, { math: named === 'MathOCR' }) : null;
  const rule = due && due.rule === cited ? 1 : 0;
  const version = due && due.name === named ? 1 : 0;
  return { score: (10 * (existence + rule + version)) / 3, existence, rule, version };
}

/** Mean referral over many responses, and the mean of each part. */
export interface ReferralSummary {
  /** Mean 0–10 score. */
  score: number;
  n: number;
  existence: number;
  quote: number | null;
  branch: number | null;
  path: number | null;
  rule: number | null;
  version: number | null;
}

/** Averages referral scores (clevr or tool ones) into a summary. */
export function summarizeReferral(scores: readonly (ReferralScore | ToolReferralScore)[]): ReferralSummary {
  const n = scores.length;
  const mean = (f: (s: ReferralScore | ToolReferralScore) => number | undefined): number | null => {
    const xs = scores.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };
  return {
    score: mean((s) => s.score) ?? 0, n, existence: mean((s) => s.existence) ?? 0,
    quote: mean((s) => ('quote' in s ? s.quote : undefined)), branch: mean((s) => ('branch' in s ? s.branch : undefined)),
    path: mean((s) => ('path' in s ? s.path : undefined)), rule: mean((s) => ('rule' in s ? s.rule : undefined)),
    version: mean((s) => ('version' in s ? s.version : undefined)),
  };
}
