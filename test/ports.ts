import { createServer } from "node:net";

/** Returns a TCP port on 127.0.0.1 that was free when the kernel assigned it. */
export async function findFreePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("The kernel assigned no port on 127.0.0.1"));
      });
    });
  });
}
