export * from "./catalogue.ts";
export * from "./common.ts";
export * from "./federation.ts";
export * from "./policy.ts";
export * from "./timeseries.ts";
export * from "./usage.ts";
export * from "./users.ts";
