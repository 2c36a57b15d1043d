/**
 * How the worker words what it says about runs, so that its messages read as Prefect's do: names
 * quoted as Python's `repr()` quotes them, errors as `Name: text`.
 */

/** Python's `repr()` of a string, as Prefect quotes names in its messages. */
export function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  const escaped = text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll("\r", "\\r").replaceAll("\t", "\\t");
  return quote + (quote === "'" ? escaped.replaceAll("'", "\\'") : escaped) + quote;
}

/** An error's message (anything thrown may not be an Error). */
export const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** An error's class name, as Python names an exception's type. */
export const errorName = (error: unknown): string => (error instanceof Error ? error.constructor.name : "Error");
