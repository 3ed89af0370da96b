//! Everything between "the core decided" and "a sink has it": routing by
//! `--report` ([`fanout`]) and the spool's life around a run ([`spools`]).

pub(crate) mod fanout;
pub(crate) mod spools;
