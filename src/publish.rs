//! Everything between "the core decided" and "a sink has it": the sink seam
//! ([`sink`]) and the stdout sink ([`stdout`]), routing by `--report` ([`fanout`]), each
//! sink's queue ([`outbox`]; offered to without waiting, [`offer`], with
//! what it sheds and spills when full: [`shed`], [`overflow`]), the thread that delivers it ([`publisher`], with
//! an event a sink cannot take set aside: [`poison`], [`rejects`]) and the
//! spool's life around a run ([`spools`]); before the fanout, incident
//! events waiting a moment for their container's log tail ([`tails`]).

pub(crate) mod fanout;
pub(crate) mod final_spool;
pub(crate) mod offer;
pub(crate) mod outbox;
pub(crate) mod overflow;
pub(crate) mod poison;
pub(crate) mod publisher;
pub(crate) mod rejects;
pub(crate) mod shed;
pub(crate) mod sink;
pub(crate) mod spools;
pub(crate) mod stdout;
pub(crate) mod tails;
