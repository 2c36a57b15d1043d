/**
 * Splits a command line into arguments the way a POSIX shell would quote them (Python's
 * `shlex.split`, which Prefect's process worker uses before it executes a command). No shell ever
 * sees the command: there is no expansion of variables, globs, pipes or redirections, and a command
 * that needs them says so itself (`sh -c '...'`).
 */

export class CommandSyntaxError extends Error {}

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);

export function splitCommand(command: string): string[] {
  const args: string[] = [];
  let current = "";
  // A quoted empty string is still an argument.
  let inToken = false;
  let i = 0;
  while (i < command.length) {
    const c = command[i]!;
    if (WHITESPACE.has(c)) {
      if (inToken) args.push(current);
      current = "";
      inToken = false;
      i++;
    } else if (c === "\\") {
      if (i + 1 >= command.length) throw new CommandSyntaxError("No escaped character");
      current += command[i + 1];
      inToken = true;
      i += 2;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) throw new CommandSyntaxError("No closing quotation");
      current += command.slice(i + 1, end);
      inToken = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < command.length) {
        const d = command[i]!;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        // Inside double quotes a backslash escapes only a double quote or another backslash.
        if (d === "\\" && i + 1 < command.length && (command[i + 1] === '"' || command[i + 1] === "\\")) {
          current += command[i + 1];
          i += 2;
          continue;
        }
        current += d;
        i++;
      }
      if (!closed) throw new CommandSyntaxError("No closing quotation");
      inToken = true;
    } else {
      current += c;
      inToken = true;
      i++;
    }
  }
  if (inToken) args.push(current);
  return args;
}
