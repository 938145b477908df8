"""Model card templates (rendered by hf_elmo.cards); a package so that the templates ship inside the wheel."""
