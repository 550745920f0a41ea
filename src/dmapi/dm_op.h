/*
 * dm_op.h - the DMAPI request protocol shared by libcxfsdm, the DMAPI socket
 * of every cxfsd (dm_sock.c) and the metadata server (dm_fs.c): the numbers
 * of DmRequest.op (proto/cxfs.proto, section 7) and what each one reads and
 * answers.
 *
 * On the socket each message is a frame: a 4-byte little-endian length,
 * then that many bytes of a packed DmRequest (to the daemon) or DmReply
 * (back).  One reply per request, in order.  A frame longer than
 * DM_FRAME_MAX, or one that does not decode, closes the connection.
 * Between nodes the same messages travel as DM_REQUEST / DM_REPLY frames
 * of src/rpc.
 *
 * Every reply carries err (0 or a negative errno).  A file is named by
 * ino and gen (-ESTALE if gen is not the file's current generation; gen 0
 * is refused with -EINVAL except where an op says "0: any").
 */
#ifndef CXFS_DM_OP_H
#define CXFS_DM_OP_H

#define DM_FRAME_MAX (2u << 20)   /* bytes of one packed message on the socket */
#define DM_IO_MAX (512u * 1024)   /* data bytes of one READ_INVIS / WRITE_INVIS */

enum dm_op {
	DM_OP_INFO = 1,           /* -> is_server, dmapi, node, server, fs, total/free_bytes, block_size
				   * (answered by the node itself, never forwarded) */
	DM_OP_STAT = 2,           /* ino, gen (0: any) -> stat[0] */
	DM_OP_BULKSTAT = 3,       /* off = cursor (0: start), max -> stat[], cursor (0: no more) */
	DM_OP_SESSION_CREATE = 4, /* name -> session */
	DM_OP_SESSION_ASSUME = 5, /* name -> session */
	DM_OP_SESSION_DESTROY = 6,/* session, force, response -> */
	DM_OP_SESSION_LIST = 7,   /* -> sessions[] */
	DM_OP_DISPOSITION = 8,    /* session, events -> */
	/*
	 * session, max, timeout_ms -> ev[] (or err -ETIMEDOUT).  The daemon
	 * waits at most 2 s per request (timeout_ms 0 or more: 2 s); a
	 * caller that wants longer asks again.
	 */
	DM_OP_GET_EVENTS = 9,
	DM_OP_RESPOND = 10,       /* session, token, response -> */
	DM_OP_SET_EVENTLIST = 11, /* ino, gen, events -> */
	DM_OP_GET_EVENTLIST = 12, /* ino, gen (0: any) -> events */
	DM_OP_SET_REGIONS = 13,   /* ino, gen, regions[] -> */
	DM_OP_GET_REGIONS = 14,   /* ino, gen (0: any) -> events, regions[] (all), count */
	DM_OP_SET_DMATTR = 15,    /* ino, gen, name, data -> */
	DM_OP_GET_DMATTR = 16,    /* ino, gen, name -> data (or -ENODATA) */
	DM_OP_REMOVE_DMATTR = 17, /* ino, gen, name -> */
	DM_OP_READ_INVIS = 18,    /* ino, gen, off, len (<= DM_IO_MAX) -> data */
	DM_OP_WRITE_INVIS = 19,   /* ino, gen, off, data (<= DM_IO_MAX) -> count */
	DM_OP_PUNCH = 20,         /* ino, gen, off, len (0: to EOF) -> */
	/*
	 * A user request to the HSM: ino, gen, code -> the HSM's answer in
	 * err.  Answered within about 2 s: if the HSM has not answered yet,
	 * err is -EINPROGRESS and token is set; ask again with DM_OP_WAIT.
	 */
	DM_OP_USER = 21,
	DM_OP_WAIT = 22,          /* token -> as DM_OP_USER */
	/*
	 * Internal, node -> MDS: an access raised a data event: ino, type,
	 * off, len -> as DM_OP_USER (0: go on and re-check the regions).
	 */
	DM_OP_EVENT = 23,
};

#endif
