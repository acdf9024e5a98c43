/**
 * Floating promises: an expression statement whose value is a promise that
 * is neither awaited, returned nor handled. `w.wait();` in a loop is the
 * classic case: the loop does not wait, spins, and grows promises until the
 * worker reaches its heap limit.
 *
 * The rule of typescript-eslint's `no-floating-promises`, reduced to what
 * a worker needs, on the type checker `pg_tsworker check` already has
 * (typescript-eslint would bring ESLint and its parser into the server's
 * runtime directory for one rule). As there: `void p` marks a promise left
 * to run on purpose, `p.catch(f)` or `p.then(f, g)` handle it, and
 * `x = p` keeps it.
 */
import type * as TS from 'typescript';

import type { Problem } from './problem';

/** Does a value of this type have a callable `then` (a promise or thenable)? */
function isThenable(ts: typeof TS, checker: TS.TypeChecker, type: TS.Type): boolean {
  if (type.isUnion()) return type.types.some((t) => isThenable(ts, checker, t));
  const then = checker.getApparentType(type).getProperty('then');
  if (!then) return false;
  const declaration = then.valueDeclaration ?? then.declarations?.[0];
  if (!declaration) return false;
  return checker.getTypeOfSymbolAtLocation(then, declaration).getCallSignatures().length > 0;
}

/** `p.catch(f)` or `p.then(f, g)`: the rejection is handled. */
function isHandled(ts: typeof TS, expr: TS.Expression): boolean {
  if (!ts.isCallExpression(expr) || !ts.isPropertyAccessExpression(expr.expression)) return false;
  const method = expr.expression.name.text;
  return (method === 'catch' && expr.arguments.length >= 1) || (method === 'then' && expr.arguments.length >= 2);
}

/** `x = p`, `x ??= p` ...: the promise is kept, for later. */
function isAssignment(ts: typeof TS, expr: TS.Expression): boolean {
  return (
    ts.isBinaryExpression(expr) &&
    expr.operatorToken.kind >= ts.SyntaxKind.FirstAssignment &&
    expr.operatorToken.kind <= ts.SyntaxKind.LastAssignment
  );
}

/** The floating promises in `files`. */
export function floatingPromises(ts: typeof TS, checker: TS.TypeChecker, files: readonly TS.SourceFile[]): Problem[] {
  const problems: Problem[] = [];
  for (const file of files) {
    const visit = (node: TS.Node): void => {
      if (ts.isExpressionStatement(node)) {
        let expr = node.expression;
        while (ts.isParenthesizedExpression(expr)) expr = expr.expression;
        if (!ts.isVoidExpression(expr) && !isAssignment(ts, expr) && !isHandled(ts, expr) && isThenable(ts, checker, checker.getTypeAtLocation(expr))) {
          const at = file.getLineAndCharacterOfPosition(expr.getStart(file));
          const text = expr.getText(file).split('\n')[0].slice(0, 60);
          problems.push({
            file: file.fileName,
            line: at.line + 1,
            column: at.character + 1,
            message:
              `error: promise not awaited: \`${text}\` goes on without waiting for it, and a rejection would end the worker; ` +
              'write `await` before it (or `void` to let it run on its own, or handle it with .catch())',
          });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return problems;
}
