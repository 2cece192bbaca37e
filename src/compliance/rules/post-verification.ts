import { coverage, isReadback } from '../coverage.js';
import {
  defineRule,
  evidence,
  fail,
  isType,
  listOf,
  notApplicable,
  pass,
  pending,
  quote,
  type Readback,
  type Recorded,
  ref,
} from '../facts.js';

export const postVerification = defineRule(
  'post-verification',
  'Verified after the change',
  'For a completed rollout, pass when after its last completed step `post` readbacks cover a shared-truth surface, a readiness surface and every surface in `verification.post`, all passing, and at least one representative-path verification passed; fail otherwise; pending while in flight; not applicable when aborted (the rollback rules govern).',
  ({ events, plan, planEvent, started, completed, aborted }) => {
    if (aborted) {
      return notApplicable(
        evidence(aborted.event),
        `aborted (${ref(aborted.event)}): the rollback rules govern`,
      );
    }
    if (!completed) {
      return pending([], `${started ? 'in flight' : 'not started yet'}: judged once the rollout completes`);
    }

    // "After the change": after the last completed step, or after the start when no step completed.
    let from = -1;
    for (let i = completed.index - 1; i >= 0; i--) {
      if (events[i]?.type === 'StepCompleted') {
        from = i;
        break;
      }
    }
    if (from < 0) from = started?.index ?? -1;
    const anchor: Recorded | undefined = events[from];
    const since =
      anchor === undefined
        ? 'after the change'
        : anchor.type === 'StepCompleted'
          ? `after the last completed step (${anchor.data.stepId}, ${ref(anchor)})`
          : `after the start (${ref(anchor)})`;

    const isPost = (e: Recorded): e is Readback => isReadback(e) && e.data.phase === 'post';
    const window = events.slice(from + 1, completed.index);
    const readbacks = window.filter(isPost);
    const paths = window.filter(isType('PathVerified'));
    const { missing } = coverage(readbacks, plan.verification?.post ?? []);
    const notPassing = readbacks.filter((r) => r.data.verdict !== 'pass');
    const passingPath = paths.find((p) => p.data.verdict === 'pass');

    const problems: string[] = [];
    if (missing.length > 0) problems.push(`no post readback of ${listOf(missing)}`);
    if (notPassing.length > 0) {
      problems.push(
        `${listOf(
          notPassing.map((r) => `${r.data.surface} read back ${r.data.verdict} (${ref(r)})`),
          3,
        )}`,
      );
    }
    if (!passingPath) {
      problems.push(
        paths.length === 0
          ? 'no representative user or operator path was verified'
          : `no representative path passed (${listOf(
              paths.map((p) => `${quote(p.data.path, 40)} ${p.data.verdict} ${ref(p)}`),
              2,
            )})`,
      );
    }

    const used = evidence(planEvent, anchor, ...readbacks, ...paths, completed.event);
    if (problems.length > 0 || !passingPath) {
      const early = events.slice(started?.index ?? 0, Math.max(from, 0)).filter(isPost);
      const note =
        early.length > 0 && missing.length > 0
          ? `; post readbacks before then do not count (${listOf(
              early.map((r) => `${r.data.surface} ${ref(r)}`),
              3,
            )})`
          : '';
      return fail(used, `${since}: ${problems.join('; ')}${note}`);
    }
    return pass(
      used,
      `${since}: ${listOf(
        readbacks.map((r) => `${r.data.surface} pass (${ref(r)})`),
        4,
      )}; path ${quote(passingPath.data.path, 50)} passed (${ref(passingPath)})`,
    );
  },
);
