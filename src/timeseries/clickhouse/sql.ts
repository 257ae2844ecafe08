/**
 * Literals for ClickHouse statements. ClickHouse 18.16 has no query parameters, so values are
 * inlined, and only through these functions: strings through {@link quoteString}, times as
 * whole Unix seconds, counts as validated integers.
 */
import { toUnixSeconds } from "../time.ts";

/**
 * Returns `value` as a ClickHouse string literal. Backslash and single quote are escaped with a
 * backslash, and every control character (U+0000 to U+001F and U+007F) becomes `\xHH`, so no
 * byte of the value can end the literal or the statement. Other characters pass through as
 * UTF-8, which ClickHouse stores byte for byte.
 */
export function quoteString(value: string): string {
  let literal = "'";
  for (const character of value) {
    const code = character.codePointAt(0) ?? 0;
    if (character === "\\") literal += "\\\\";
    else if (character === "'") literal += "\\'";
    else if (code < 0x20 || code === 0x7f) literal += `\\x${code.toString(16).padStart(2, "0")}`;
    else literal += character;
  }
  return `${literal}'`;
}

/** Returns `time` as a `DateTime` expression, truncated to whole seconds. */
export function dateTimeLiteral(time: Date): string {
  const seconds = toUnixSeconds(time);
  if (!Number.isSafeInteger(seconds) || seconds < 0) {
    throw new RangeError(`time ${time.toISOString()} has no ClickHouse DateTime value`);
  }
  return `toDateTime(${seconds})`;
}

/** Returns `value` as an integer literal; throws on anything but a non-negative safe integer. */
export function integerLiteral(value: number): string {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`expected a non-negative safe integer, got ${value}`);
  }
  return String(value);
}
