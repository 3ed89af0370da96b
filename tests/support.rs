//! Shared fixtures, one file each; every test reaches them as
//! `crate::support::…`.

#![allow(dead_code)]

mod accept;
mod ca;
mod docker;
mod engine;
mod faults;
mod fleet;
mod games;
mod http;
mod pids;
mod postgres;
mod process;
mod receiver;

pub use accept::*;
pub use ca::*;
pub use docker::*;
pub use engine::*;
pub use faults::*;
pub use fleet::*;
pub use games::*;
pub use http::*;
pub use pids::*;
pub use postgres::*;
pub use process::*;
pub use receiver::*;
