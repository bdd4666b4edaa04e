//! Keeping a port's datagrams among the sockets that were meant to share it.
//!
//! `SO_REUSEPORT` lets any socket of the same user join a port's group, and
//! Linux's choice of a free UDP port (port 0) does not count such a group as
//! a user of its port: another program binding port 0 with `SO_REUSEPORT`
//! can be handed a port already served, and then receives part of its
//! datagrams. [`UdpSocketBuilder::bind_group`](crate::UdpSocketBuilder::bind_group)
//! closes both ways in:
//! - the first socket binds without `SO_REUSEPORT`, so the kernel counts
//!   every socket already on a port and gives a port no one uses (a taken
//!   port is an error); the option is set after the bind, so that the
//!   group's other sockets can join it;
//! - a classic BPF program attached to the group sends each datagram to
//!   one of the group's first members, chosen by the datagram's source
//!   port. The kernel numbers members in the order they joined, so a socket
//!   that joins later is never chosen.
//!
//! What is not closed:
//! - between the first socket's option and the program (three system
//!   calls), a socket that binds exactly that port would join among the
//!   first members; nothing but this crate knows the port by then, unless
//!   another program is handed it by the kernel within those microseconds;
//! - when a member closes, the kernel moves the group's last socket into
//!   its place: a stranger that joined takes a share from then on. Members
//!   close when their server stops.
//!
//! This module is not for TCP: Linux's choice of a free TCP port counts
//! `SO_REUSEPORT` listeners as users.

use socket2::{SockFilter, SockRef};
use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Attaches to `socket`'s `SO_REUSEPORT` group a program that sends each
/// datagram to one of the group's first `members` sockets (by source port).
///
/// # Errors
/// The `setsockopt` error: `EINVAL` if `socket` is in no group.
pub(crate) fn steer_to_first_members(socket: &impl AsFd, members: u32) -> io::Result<()> {
    let program = program(members);
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the
    // kernel copies the program and keeps no pointer into it. `SockFilter`
    // is `repr(transparent)` over `libc::sock_filter`.
    let result = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets `SO_REUSEPORT` on a socket that is bound already.
pub(crate) fn allow_joining(socket: &impl AsFd) -> io::Result<()> {
    SockRef::from(socket).set_reuse_port(true)
}

/// The program: the index of the member to receive a datagram, which is its
/// UDP source port modulo `members`.
///
/// The kernel runs it with the packet's data at the UDP payload; offsets
/// from `SKF_NET_OFF` reach the IP header. The source port is the first
/// field after it: 20 bytes in for IPv4 (options are rare, and with them a
/// different pair of bytes is taken, which still gives a valid index), 40
/// for IPv6. A load that fails ends the program with 0, the first member.
fn program(members: u32) -> [SockFilter; 9] {
    const NET: u32 = libc::SKF_NET_OFF as u32;
    let op = |code: u32| code as u16;
    [
        // A = the IP version nibble.
        SockFilter::new(op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS), 0, 0, NET),
        SockFilter::new(op(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K), 0, 0, 4),
        // IPv6: the header is 40 bytes; otherwise 20.
        SockFilter::new(op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K), 2, 0, 6),
        SockFilter::new(op(libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM), 0, 0, 20),
        SockFilter::new(op(libc::BPF_JMP | libc::BPF_JA), 0, 0, 1),
        SockFilter::new(op(libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM), 0, 0, 40),
        // A = the source port; the member is A mod members.
        SockFilter::new(op(libc::BPF_LD | libc::BPF_H | libc::BPF_IND), 0, 0, NET),
        SockFilter::new(
            op(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K),
            0,
            0,
            members,
        ),
        SockFilter::new(op(libc::BPF_RET | libc::BPF_A), 0, 0, 0),
    ]
}
