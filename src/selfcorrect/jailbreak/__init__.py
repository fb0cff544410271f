"""selfcorrect.jailbreak"""
