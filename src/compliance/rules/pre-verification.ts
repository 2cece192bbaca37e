import { coverage, isReadback } from '../coverage.js';
import {
  defineRule,
  evidence,
  fail,
  listOf,
  notApplicable,
  pass,
  pending,
  type Readback,
  ref,
} from '../facts.js';

export const preVerification = defineRule(
  'pre-verification',
  'Verified before the change',
  'Pass when, before the start, `pre` readbacks cover a shared-truth surface (version-truth or contracts-drift), a readiness surface and every surface in `verification.pre`, and none of the latest per surface failed; fail otherwise; pending before the start.',
  ({ events, plan, planEvent, started, aborted }) => {
    const end = started?.index ?? events.length;
    const isPre = (e: (typeof events)[number]): e is Readback => isReadback(e) && e.data.phase === 'pre';
    const before = events.slice(0, end).filter(isPre);
    const { latest, missing } = coverage(before, plan.verification?.pre ?? []);
    const failed = [...latest.values()].filter((r) => r.data.verdict === 'fail');
    const used = evidence(planEvent, ...latest.values(), started?.event);
    const read = [...latest.values()].map((r) => `${r.data.surface} ${r.data.verdict} (${ref(r)})`);

    if (!started) {
      // Interpretation: a rollout abandoned before it started changed nothing; "pending" would
      // promise a verdict that can never come.
      if (aborted)
        return notApplicable(
          evidence(aborted.event),
          `aborted before the start (${ref(aborted.event)}): nothing was changed`,
        );
      return pending(
        used,
        `not started yet: ${
          missing.length > 0
            ? `no pre readback so far of ${listOf(missing)}`
            : `pre readbacks so far: ${listOf(read)}`
        }`,
      );
    }

    const problems: string[] = [];
    if (missing.length > 0) problems.push(`no pre readback of ${listOf(missing)}`);
    if (failed.length > 0) {
      problems.push(
        `the latest ${listOf(failed.map((r) => `${r.data.surface} readback (${ref(r)})`))} failed`,
      );
    }
    if (problems.length > 0) {
      const late = events.slice(end + 1).filter(isPre);
      const note =
        late.length > 0
          ? `; pre readbacks after the start do not count (${listOf(
              late.map((r) => `${r.data.surface} ${ref(r)}`),
              3,
            )})`
          : '';
      return fail(used, `before the start (${ref(started.event)}): ${problems.join('; ')}${note}`);
    }
    return pass(used, `before the start (${ref(started.event)}): ${listOf(read)}`);
  },
);
