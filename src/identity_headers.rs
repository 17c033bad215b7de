//! Strip every client copy of the identity headers; set them only from `&Authenticated`.
