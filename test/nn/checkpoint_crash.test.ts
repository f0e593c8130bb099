// Crash safety of saveCheckpoint: a child process (checkpoint_crash_child.mjs, on the built package
// in dist/: `npm test` builds first) saves a small model and its optimizer state into one directory
// in a loop, every value of save k equal to k, and is SIGKILLed at random moments. After every kill
// the directory must load completely (loadCheckpoint verifies step, save id and checksums of every
// file), hold one save's values throughout (all k for a single k), that save must be the last or
// the second-to-last one started (and no older than the last one finished), and what the killed
// save left behind must be at most one save's worth of files (model, optimizer, config temporary),
// removed by the next save.
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';

const { nn } = t;
const here = fileURLToPath(new URL('.', import.meta.url));
const childScript = join(here, 'checkpoint_crash_child.mjs');
const distIndex = resolve(here, '../../dist/src/index.js');
const KILLS = 24;

let root: string;
beforeAll(async () => {
  await t.init();
  root = mkdtempSync(join(tmpdir(), 'trimpi-crash-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Starts the child and resolves once it is ready to save (its GPU device is up). */
function startChild(dir: string, first: number): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, [childScript, pathToFileURL(distIndex).href, dir, String(first)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the child was not ready after 30 s: ${err}`)), 30_000);
    const poll = setInterval(() => {
      if (out.includes('ready\n')) {
        clearInterval(poll);
        clearTimeout(timer);
        res({ child, out: () => out });
      }
    }, 2);
    child.on('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      if (!out.includes('ready\n')) rej(new Error(`the child exited (${code}) before it was ready: ${err}`));
    });
  });
}

describe('checkpoint crash safety', () => {
  it(`a save SIGKILLed at a random instant leaves the previous or the new checkpoint, whole (${KILLS} kills)`, async () => {
    expect(existsSync(distIndex), `${distIndex} is missing: run \`npm run build\` before this test`).toBe(true);
    const dir = join(root, 'ckpt');
    const model = new nn.MLP(64, 256);
    const opt = new nn.AdamW(model.parameters());
    const read = async (): Promise<Float32Array[]> => {
      const out: Float32Array[] = [];
      for (const p of model.parameters()) {
        const { m, v } = opt.moments(p);
        for (const x of [p, m, v]) out.push((await x.toArray()) as Float32Array);
      }
      return out;
    };
    const t0 = performance.now();
    // save 0, by this process: there is always a committed checkpoint to fall back to
    t.noGrad(() => {
      for (const p of model.parameters()) for (const x of [p, opt.moments(p).m, opt.moments(p).v]) t.assign(x, 0);
    });
    await nn.saveCheckpoint(dir, model, { optimizer: opt, step: 0, extra: { k: 0 } });
    let prev = 0;
    const outcomes = { newest: 0, previous: 0, beforeFirstSave: 0 };
    let staleMax = 0;
    const staleKinds = { temporaries: 0, uncommittedOrObsolete: 0 };
    let saves = 0;
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        const { child, out } = await startChild(dir, prev + 1);
        await new Promise((r) => setTimeout(r, Math.random() * 60)); // a few saves' time
        const closed = new Promise((r) => child.on('close', r));
        child.kill('SIGKILL');
        await closed;
        const lines = out().split('\n');
        const started = lines.filter((l) => l.startsWith('start ')).map((l) => Number(l.slice(6)));
        const done = lines.filter((l) => l.startsWith('done ')).map((l) => Number(l.slice(5)));
        const lastStarted = started.length ? started[started.length - 1] : prev;
        const lastDone = done.length ? done[done.length - 1] : prev;
        saves += done.length;

        // what the kill left behind, before anything touches the directory
        const manifest = nn.readManifest(dir);
        const live = new Set(['config.json', manifest.files.model, manifest.files.optimizer!]);
        const stale = readdirSync(dir).filter((f) => !live.has(f));
        staleMax = Math.max(staleMax, stale.length);
        for (const f of stale) staleKinds[f.includes('.tmp-') ? 'temporaries' : 'uncommittedOrObsolete']++;
        expect(stale.length, `kill ${kill}: stale files ${stale.join(', ')}`).toBeLessThanOrEqual(3);

        const loaded = nn.loadCheckpoint(dir, model, { optimizer: opt }); // verifies every file
        const k = loaded.step;
        expect(loaded.extra, `kill ${kill}`).toEqual({ k });
        expect(opt.step).toBe(k);
        for (const a of await read()) expect(a.every((x) => x === k), `kill ${kill}: every value is ${k}`).toBe(true);
        expect(Array.from(await opt.biasCorrection.toArray())).toEqual([Math.fround(k / (k + 1)), Math.fround(k / (k + 1))]);
        expect([lastStarted, lastStarted - 1], `kill ${kill}: loaded save ${k}, last started ${lastStarted}`).toContain(k);
        expect(k, `kill ${kill}: a finished save is never lost`).toBeGreaterThanOrEqual(lastDone);
        if (started.length === 0) outcomes.beforeFirstSave++;
        else if (k === lastStarted) outcomes.newest++;
        else outcomes.previous++;
        prev = k;
      }
      // the next save removes whatever the last kill left
      const final = await nn.saveCheckpoint(dir, model, { optimizer: opt });
      expect(readdirSync(dir).sort()).toEqual(['config.json', final.files.model, final.files.optimizer!].sort());
    } finally {
      opt.dispose();
      model.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(`checkpoint crash test: ${KILLS} kills in ${seconds.toFixed(1)} s, ${saves} saves finished by the children; `
      + `loaded the save in flight ${outcomes.newest}x, the previous one ${outcomes.previous}x, killed before any save ${outcomes.beforeFirstSave}x; `
      + `stale files after a kill: at most ${staleMax} (${staleKinds.temporaries} temporaries, ${staleKinds.uncommittedOrObsolete} uncommitted or obsolete data files in all)`);
  }, 120_000);
});
