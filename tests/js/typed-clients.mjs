// GraphQL Code Generator (client preset) over the committed schema and a front end's
// documents: it must generate without errors, and the types must hold what the documents ask
// for. Prints a JSON summary for the Rust test.
import { generate } from '@graphql-codegen/cli';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'gateway-codegen-')) + '/';
await generate(
  {
    schema: join(here, '../../schema.graphql'),
    documents: [join(here, 'documents/*.graphql')],
    generates: { [out]: { preset: 'client', config: { enumsAsTypes: true } } },
    silent: true,
    errorsOnly: true,
  },
  true,
);
const files = readdirSync(out);
const graphql = readFileSync(join(out, 'graphql.ts'), 'utf8');
// The generated code must type-check on its own.
const program = ts.createProgram(files.filter((f) => f.endsWith('.ts')).map((f) => join(out, f)), {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  target: ts.ScriptTarget.ES2022,
  baseUrl: here,
  paths: { '*': [join(here, 'node_modules/*')] },
});
const diagnostics = ts.getPreEmitDiagnostics(program).map((d) =>
  ts.flattenDiagnosticMessageText(d.messageText, '\n'),
);
console.log(
  JSON.stringify({
    files,
    diagnostics,
    types: ['ThreadPageQuery', 'ReplyMutation', 'ClaimTaskMutation', 'MyNotificationsSubscription', 'TaskStatus'].filter(
      (t) => graphql.includes(`export type ${t} `),
    ),
  }),
);
