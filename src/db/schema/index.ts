export * from "./catalogue.ts";
export * from "./common.ts";
export * from "./federation.ts";
export * from "./users.ts";
