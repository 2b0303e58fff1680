import type { CommandSpec } from '../command.js';
import { broadcast, connections, disconnect, info, peers } from './admin.js';
import { config, init } from './config.js';
import { inbox, outbox, received, sendFile, sendMessage } from './data.js';
import { daemonStart, daemonStatus, daemonStop, rendezvousStop } from './daemon.js';
import { publish, subscribe } from './events.js';
import { logs } from './logs.js';
import { bench, ping } from './ping.js';
import { traceroute } from './traceroute.js';
import { connect, listen, recv, send, sendto } from './net.js';
import {
  clearHostname,
  clearTags,
  clearWebhook,
  deregister,
  disableTasks,
  enableTasks,
  find,
  lookup,
  setHostname,
  setPrivate,
  setPublic,
  setTags,
  setWebhook,
} from './registry.js';
import { TASK_COMMANDS } from './tasks.js';
import { approve, handshake, handshakes, pending, reject, trust, untrust } from './trust.js';

/** Every command except `context`, in the order usage lists them. */
export const ALL_COMMANDS: readonly CommandSpec[] = [
  init,
  config,
  daemonStart,
  daemonStop,
  daemonStatus,
  rendezvousStop,
  logs,
  info,
  peers,
  connections,
  disconnect,
  lookup,
  find,
  setHostname,
  clearHostname,
  setPublic,
  setPrivate,
  setTags,
  clearTags,
  setWebhook,
  clearWebhook,
  enableTasks,
  disableTasks,
  deregister,
  handshake,
  handshakes,
  pending,
  approve,
  reject,
  trust,
  untrust,
  ping,
  traceroute,
  bench,
  connect,
  send,
  recv,
  sendto,
  listen,
  subscribe,
  publish,
  sendMessage,
  sendFile,
  inbox,
  received,
  outbox,
  ...TASK_COMMANDS,
  broadcast,
];
