//! The chat formats: pure functions from an event (or a digest of several)
//! to the body of a chat's request, each cut to its service's limits, every
//! text from outside made inert in its markup. [`text`] holds the words
//! they share; [`digest`] what a batch says, which each format shapes in
//! its own message; [`tail`] how each shows an incident's last log lines. The envelope format is not here: its body is the
//! envelope itself.

pub(crate) mod digest;
pub(crate) mod discord;
#[cfg(test)]
mod ends;
pub(crate) mod ntfy;
#[cfg(test)]
mod samples;
pub(crate) mod slack;
pub(crate) mod tail;
pub(crate) mod telegram;
pub(crate) mod text;
