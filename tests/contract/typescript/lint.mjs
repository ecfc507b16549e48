// Redocly's lint, recommended rules, of an OpenAPI document: a second validator beside
// openapi-spec-validator (tests/contract/test_redocly_lint.py).
// Usage: node lint.mjs openapi.json; prints one JSON line, the problems found.
import { createConfig, lint } from '@redocly/openapi-core';

const config = await createConfig({ extends: ['recommended'] });
const problems = await lint({ ref: process.argv[2], config });
console.log(
  JSON.stringify(
    problems.map((problem) => ({
      severity: problem.severity,
      rule: problem.ruleId,
      message: problem.message,
      at: problem.location?.[0]?.pointer ?? null,
    })),
  ),
);
