// groupCenter: values minus their group's mean, for equal ({ size }) or ragged ({ offsets }) groups.
import { groupCenterRef } from '../reference/groupCenter.js';
import type { GroupCenterArgs, GroupCenterResult } from '../types.js';
import { numbersOf, offsetsOf, plain, rangeError, snapshot } from '../validate.js';
import { runAsync, runSync } from './run.js';

const FN = 'groupCenter';

function normalize(args: unknown) {
  const a = snapshot(FN, args, ['values', 'groups']);
  const values = numbersOf(FN, 'values', a.values);
  if (values.length === 0) rangeError(FN, 'values', 'a non-empty array', 'length 0');
  const offsets = offsetsOf(FN, a.groups, values.length);
  return plain({ values, offsets });
}

/** Values minus their group's mean (how GVPO centers rewards: never divided by the std). */
export function groupCenter(args: GroupCenterArgs): GroupCenterResult {
  const o = normalize(args);
  return runSync(FN, o, () => groupCenterRef(o.values, o.offsets));
}

export async function groupCenterAsync(args: GroupCenterArgs): Promise<GroupCenterResult> {
  const o = normalize(args);
  return runAsync(FN, o, () => groupCenterRef(o.values, o.offsets));
}
