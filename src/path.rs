//! Request path normalisation: one canonical spelling for routing, authorisation and forwarding.
