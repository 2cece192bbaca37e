import {
  defineRule,
  evidence,
  fail,
  isReadiness,
  isSharedTruth,
  listOf,
  nonEmpty,
  pass,
  quote,
  READINESS_CLASS,
  SHARED_TRUTH_CLASS,
} from '../facts.js';

export const verificationPlanned = defineRule(
  'verification-planned',
  'Verification is part of the plan',
  "Pass when the plan's `verification` names, for after the change, a shared-truth surface, a readiness surface and at least one representative user or operator path; fail otherwise.",
  ({ plan, planEvent }) => {
    const used = evidence(planEvent);
    const verification = plan.verification;
    const post = verification?.post ?? [];
    const paths = (verification?.representativePaths ?? []).filter(nonEmpty);
    const missing: string[] = [];
    if (!post.some(isSharedTruth)) missing.push(`${SHARED_TRUTH_CLASS} in verification.post`);
    if (!post.some(isReadiness)) missing.push(`${READINESS_CLASS} in verification.post`);
    if (paths.length === 0) missing.push('a representative user or operator path');
    if (missing.length > 0) {
      return fail(
        used,
        `${verification ? "the plan's verification" : 'the plan has no verification and so'} does not name ${listOf(missing)} for after the change`,
      );
    }
    return pass(
      used,
      `after the change the plan reads back ${listOf([...new Set(post)])} and exercises ${listOf(
        paths.map((p) => quote(p, 60)),
        2,
      )}`,
    );
  },
);
