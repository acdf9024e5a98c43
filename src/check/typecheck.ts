/**
 * The type-checking half of `pg_tsworker check`: a worker module is
 * compiled strictly, as tsconfig.node18.json says, against the installed
 * runtime's declarations and the Node 18 types shipped with it, with the
 * server's module resolution (`pg-tsworker` is always the installed runtime;
 * other bare names resolve from the module's directory first, then from the
 * packages shipped with the runtime: src/runtime/host-entry.ts,
 * setupResolution).
 */
import * as path from 'path';
import type * as TS from 'typescript';

import baseConfig from './tsconfig.node18.json';
import { floatingPromises } from './floating';
import type { Problem } from './problem';

/** What checking one module found. */
export interface TypeCheckResult {
  problems: Problem[];
  /** The module has syntax errors: loading it would fail the same way. */
  syntaxErrors: boolean;
  /** Where the default export is (for a load error about it), if anywhere. */
  defaultExport?: { line: number; column: number };
  /** The program, to reuse for the next module (declarations parsed once). */
  program: TS.Program;
}

/** The installed TypeScript, shipped with the runtime. */
export function loadTypeScript(runtimeDir: string): typeof TS {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require(path.join(runtimeDir, 'node_modules', 'typescript')) as typeof TS;
}

/** Compiler options of worker modules (tsconfig.node18.json), for the runtime in `runtimeDir`. */
export function compilerOptions(ts: typeof TS, runtimeDir: string): TS.CompilerOptions {
  const { options, errors } = ts.convertCompilerOptionsFromJson(baseConfig.compilerOptions, runtimeDir);
  if (errors.length) throw new Error(ts.flattenDiagnosticMessageText(errors[0].messageText, '\n'));
  // Node's types are the ones shipped with the runtime (Node 18), whatever
  // a project beside the module has.
  options.typeRoots = [path.join(runtimeDir, 'node_modules', '@types')];
  options.allowJs = true;
  return options;
}

function isBare(name: string): boolean {
  return !name.startsWith('.') && !path.isAbsolute(name) && !name.startsWith('node:');
}

/** A module resolver that does what the server does (setupResolution). */
function serverResolution(ts: typeof TS, host: TS.CompilerHost, runtimeDir: string): TS.CompilerHost['resolveModuleNameLiterals'] {
  const runtimeIndex = path.join(runtimeDir, 'dist', 'runtime', 'index.d.ts');
  const fromRuntime = path.join(runtimeDir, 'index.ts');
  return (literals, containingFile, _redirected, options, containingSource) =>
    literals.map((literal) => {
      const name = literal.text;
      if (name === 'pg-tsworker') {
        return { resolvedModule: { resolvedFileName: runtimeIndex, extension: ts.Extension.Dts, isExternalLibraryImport: true } };
      }
      // node16 resolution: `require` or `import` conditions, as the file's format says
      const mode = ts.getModeForUsageLocation(containingSource, literal, options);
      const own = ts.resolveModuleName(name, containingFile, options, host, undefined, undefined, mode);
      if (own.resolvedModule || !isBare(name)) return own;
      return ts.resolveModuleName(name, fromRuntime, options, host, undefined, undefined, mode);
    });
}

function position(file: TS.SourceFile, start: number): { line: number; column: number } {
  const lc = file.getLineAndCharacterOfPosition(start);
  return { line: lc.line + 1, column: lc.character + 1 };
}

function toProblem(ts: typeof TS, d: TS.Diagnostic, fallbackFile: string): Problem {
  const message = `error TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  if (d.file && d.start !== undefined) return { file: d.file.fileName, ...position(d.file, d.start), message };
  return { file: fallbackFile, line: 1, column: 1, message };
}

/** The `export default` of a module, if it has one. */
function findDefaultExport(ts: typeof TS, file: TS.SourceFile): TS.Node | undefined {
  for (const s of file.statements) {
    if (ts.isExportAssignment(s)) return s;
    const mods = ts.canHaveModifiers(s) ? ts.getModifiers(s) : undefined;
    if (mods?.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)) return s;
  }
  return undefined;
}

/**
 * Type-check `file` (absolute) against the runtime in `runtimeDir`;
 * `previous`, the program of the module checked before, saves parsing the
 * declarations again.
 */
export function typeCheck(file: string, runtimeDir: string, previous?: TS.Program): TypeCheckResult {
  const ts = loadTypeScript(runtimeDir);
  const options = compilerOptions(ts, runtimeDir);
  const host = ts.createCompilerHost(options, true);
  host.resolveModuleNameLiterals = serverResolution(ts, host, runtimeDir);
  const program = ts.createProgram({ rootNames: [file], options, host, oldProgram: previous });
  const source = program.getSourceFile(file);
  const syntactic = program.getSyntacticDiagnostics();
  if (syntactic.length > 0) {
    return { problems: syntactic.map((d) => toProblem(ts, d, file)), syntaxErrors: true, program };
  }
  const diagnostics = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(), ...program.getSemanticDiagnostics()];
  const problems = diagnostics.map((d) => toProblem(ts, d, file));
  // The module and its own files: not declarations, not packages.
  const own = program.getSourceFiles().filter((f) => !f.isDeclarationFile && !program.isSourceFileFromExternalLibrary(f));
  problems.push(...floatingPromises(ts, program.getTypeChecker(), own));
  const exported = source && findDefaultExport(ts, source);
  return {
    problems,
    syntaxErrors: false,
    program,
    defaultExport: exported && source ? position(source, exported.getStart(source)) : undefined,
  };
}
