"""selfcorrect.bbq"""
