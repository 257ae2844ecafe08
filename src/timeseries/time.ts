/** UTC time arithmetic for the time-series store; every bucket boundary is a whole UTC unit. */

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

export function floorMinute(time: Date): Date {
  return new Date(Math.floor(time.getTime() / MINUTE_MS) * MINUTE_MS);
}

export function floorHour(time: Date): Date {
  return new Date(Math.floor(time.getTime() / HOUR_MS) * HOUR_MS);
}

export function floorDay(time: Date): Date {
  return new Date(Math.floor(time.getTime() / DAY_MS) * DAY_MS);
}

export function addMs(time: Date, ms: number): Date {
  return new Date(time.getTime() + ms);
}

export function minDate(a: Date, b: Date): Date {
  return a.getTime() <= b.getTime() ? a : b;
}

export function maxDate(a: Date, b: Date): Date {
  return a.getTime() >= b.getTime() ? a : b;
}

/** Unix time in whole seconds, the form ClickHouse `DateTime` columns take and return. */
export function toUnixSeconds(time: Date): number {
  return Math.floor(time.getTime() / 1000);
}

/** Orders strings by UTF-16 code units, the same on every machine and locale. */
export function compareKeys(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

export function fromUnixSeconds(seconds: number): Date {
  return new Date(seconds * 1000);
}
