// MpiData.score: what the RL reward and the tables count as accurate and well-formed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'trimpi-mpidata-'));
let data: t.stages.MpiData;

beforeAll(async () => {
  await t.init();
  data = await t.stages.MpiData.open(join(work, 'data'), { setting: 'clevr-t', depth: 2, seed: 0, policies: 2, train: 4, test: 2, imageSize: 16 });
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('MpiData.score (clevr)', () => {
  it('format is the reward\'s strict one: one think block, one box with a known case, nothing else', () => {
    const r = data.test[0] as t.data.ClevrRecord;
    const gold = `Case ${r.case}`;
    const think = '<think> Condition 1: check if there is any cube. There is no cube. </think>';
    const cases: [string, number, number][] = [
      [`${think} \\boxed{${gold}}`, 1, 1],
      [`${think}\n\\boxed{${gold}}\n`, 1, 1],
      // what RL learned to emit: repeated closings and boxes, the last box right
      [`${think} \\boxed{Case 9. </think> \\boxed{${gold}. </think> \\boxed{${gold}}`, 1, 0],
      [`${think} \\boxed{${gold}} and more`, 1, 0],
      [`${think} \\boxed{${gold}} \\boxed{${gold}}`, 1, 0],
      [`\\boxed{${gold}}`, 1, 0],
      [`${think} \\boxed{Case 99}`, 0, 0],
    ];
    for (const [output, score, format] of cases) expect(data.score(r, output), output).toEqual({ score, format });
  });
});
