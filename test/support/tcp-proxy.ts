import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A loopback TCP proxy the fault-injection tests control: cut every connection without a close
 * frame (both sockets destroyed), stall (stop forwarding in both directions while keeping the
 * sockets open: a peer that stops reading), resume, or retarget to a new upstream port.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private stalled = false;
  port = 0;

  constructor(private upstreamPort: number) {}

  async start(): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect(this.upstreamPort, "127.0.0.1");
      const pair = { client, upstream };
      this.pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on("data", (chunk) => {
          if (!this.stalled) to.write(chunk);
          // A stall drops bytes on the floor, like a peer whose reads never return.
        });
      forward(client, upstream);
      forward(upstream, client);
      const close = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("close", close).on("error", close);
      upstream.on("close", close).on("error", close);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  /** Destroys every open connection: no close frame, no FIN handshake with the far side. */
  cut(): void {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.pairs.clear();
  }

  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
  }

  retarget(port: number): void {
    this.upstreamPort = port;
  }

  get connections(): number {
    return this.pairs.size;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
