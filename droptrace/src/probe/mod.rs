//! Everything that needs privileges or touches the system beyond plain files: aya and the
//! bpf() system call ([`attach`]), the live source ([`LiveSource`]), the kernel facts read
//! before attaching ([`discover`]), capabilities, clocks, entering network namespaces
//! ([`netns::in_netns`], the one setns), naming interfaces inside them ([`places`]),
//! resolving filters against the system ([`filters`]), the namespace a veth's peer is in
//! ([`nsid`]) and sampling namespaces for diagnose ([`collect`]). No other folder imports aya or calls setns.
pub mod attach;
pub mod batch;
pub mod caps;
pub mod clock;
pub mod collect;
pub mod discover;
pub mod error;
pub mod filters;
pub mod host;
pub mod host_sampler;
pub mod kernel;
pub mod lines;
pub mod links;
pub mod loader;
pub mod netns;
pub mod nlsock;
pub mod node_names;
pub mod nsid;
pub mod places;
pub mod row_sampler;
pub mod source;
pub mod tcp;
pub mod workloads;
pub mod xdp;

pub use error::{Error, ProbeError};
pub use source::{LiveOptions, LiveSource, ProbeSpec};
