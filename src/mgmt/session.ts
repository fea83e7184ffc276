import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import type { PeerTransport, RpcPeer } from "../protocol/index.js";
import type { Credentials } from "./agent-auth.js";

/** One agent connection on the management server. */
export interface Session {
  socket: WebSocket;
  /** Sends a frame while the socket is open. */
  transport: PeerTransport;
  /** Before the hello: a peer of its own; after it: its host's peer. */
  peer: RpcPeer;
  hostId: string | undefined;
  /** What the connection authenticated with (mutual TLS, a bearer token). */
  credentials: Credentials;
  lastHeard: number;
  remoteAddress: string | undefined;
  /** The TCP (or TLS) socket under the WebSocket, which holds the handshake deadline. */
  rawSocket: Socket;
}
