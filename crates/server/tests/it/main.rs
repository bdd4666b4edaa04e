//! The server's behaviour through its public API and its binary, over real
//! loopback sockets. One test binary, one module per concern.

mod abuse;
mod bad_input;
mod binary;
mod limits;
mod load;
mod support;
mod tcp;
mod udp;
